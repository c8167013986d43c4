"""The sidecar form's app: asks the leader-elector container who leads.

GET http://localhost:4040/ answers {"name": "<leader>"}; this pod leads when that is its
own name (the sidecar's --identity is the pod's name).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

ELECTOR = "http://localhost:4040/"


def leader() -> str:
    with urllib.request.urlopen(ELECTOR, timeout=5) as response:
        name: str = json.load(response)["name"]
        return name


if __name__ == "__main__":
    me = os.environ["POD_NAME"]
    while True:
        try:
            current = leader()
        except OSError as exc:
            print(f"app: the leader-elector does not answer yet ({exc})", flush=True)
        else:
            print(
                f"app: {'I am the leader' if current == me else f'leader is {current!r}'}",
                flush=True,
            )
        time.sleep(5)
