"""Kubernetes access: the API client, its configuration and the errors of the API.

`KubeConfig` reads a kubeconfig file or a pod's service account (`KubeConfig.load()`), and
`ExecConfig` is a kubeconfig user's exec credential plugin. `KubeClient` sends JSON
requests and reads watch streams over httpx, with typed errors; the Kubernetes locks of
`trio_election` take one (``client=``), and `elect()` makes one when none is given.
`LEADER_ANNOTATION` is the annotation that holds the record on an Endpoints or ConfigMap
lock (client-go's key).

The errors, all of them `trio_election.ElectionError`:

    ElectionError
    ├── ApiError                 the API answered with an error status
    │   ├── NotFoundError          404
    │   ├── ConflictError          409 (the object changed since it was read)
    │   │   └── AlreadyExistsError 409 on create
    │   ├── GoneError              410 (a watch's resourceVersion is too old)
    │   ├── UnauthorizedError      401 (the credentials were refused)
    │   ├── ForbiddenError         403 (RBAC: names the verb and resource to grant)
    │   ├── InvalidError           422
    │   ├── TooManyRequestsError   429 (`retry_after` from the Retry-After header)
    │   └── ServerError            5xx
    ├── ApiConnectionError       no answer: connection refused or reset, timeout, proxy failure
    └── ConfigError
        └── KubeConfigError      a kubeconfig or in-cluster configuration that cannot work
            └── TLSVerificationError  the server's certificate is not trusted, or names
                                      another host: the CA or tls-server-name is wrong

A watch's ``ERROR`` event is raised as the `ApiError` of its status, as a response of
that status would be. No message ever contains a token, a password, a key or an exec
plugin's output.
"""

from __future__ import annotations

from ._kube import AlreadyExistsError as AlreadyExistsError
from ._kube import ApiConnectionError as ApiConnectionError
from ._kube import ApiError as ApiError
from ._kube import ConflictError as ConflictError
from ._kube import ExecConfig as ExecConfig
from ._kube import ForbiddenError as ForbiddenError
from ._kube import GoneError as GoneError
from ._kube import InvalidError as InvalidError
from ._kube import KubeClient as KubeClient
from ._kube import KubeConfig as KubeConfig
from ._kube import KubeConfigError as KubeConfigError
from ._kube import NotFoundError as NotFoundError
from ._kube import ServerError as ServerError
from ._kube import TLSVerificationError as TLSVerificationError
from ._kube import TooManyRequestsError as TooManyRequestsError
from ._kube import UnauthorizedError as UnauthorizedError
from ._kube_locks import LEADER_ANNOTATION as LEADER_ANNOTATION

__all__ = [
    "LEADER_ANNOTATION",
    "AlreadyExistsError",
    "ApiConnectionError",
    "ApiError",
    "ConflictError",
    "ExecConfig",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "KubeClient",
    "KubeConfig",
    "KubeConfigError",
    "NotFoundError",
    "ServerError",
    "TLSVerificationError",
    "TooManyRequestsError",
    "UnauthorizedError",
]
