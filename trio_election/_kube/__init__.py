"""Kubernetes access: configuration (kubeconfig, in-cluster) and a REST client over httpx.

Public as `trio_election.kube`: each name here says so in its ``__module__`` (set below,
so that tracebacks and reprs show the public path whichever module was imported first).
"""

from __future__ import annotations

from .._public import name_home
from ._client import KubeClient as KubeClient
from ._config import KubeConfig as KubeConfig
from ._errors import AlreadyExistsError as AlreadyExistsError
from ._errors import ApiConnectionError as ApiConnectionError
from ._errors import ApiError as ApiError
from ._errors import ConflictError as ConflictError
from ._errors import ForbiddenError as ForbiddenError
from ._errors import GoneError as GoneError
from ._errors import InvalidError as InvalidError
from ._errors import KubeConfigError as KubeConfigError
from ._errors import NotFoundError as NotFoundError
from ._errors import ServerError as ServerError
from ._errors import TLSVerificationError as TLSVerificationError
from ._errors import TooManyRequestsError as TooManyRequestsError
from ._errors import UnauthorizedError as UnauthorizedError
from ._kubeconfig import ExecConfig as ExecConfig

__all__ = [
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

name_home("trio_election.kube", [globals()[name] for name in __all__])
