"""Exception tree shared by every layer.

    GenericError
     ├── ConfigurationError          config store inconsistency or bad file
     │    └── ConfigVersionMismatch
     ├── OpPrereqError(msg, ecode)   the request cannot run now; nothing changed
     ├── OpExecError                 the operation failed while running
     ├── OpCodeUnknown / ParameterError / UnitParseError / TypeEnforcementError
     ├── HypervisorError             raised by hypervisor drivers
     ├── BlockDeviceError            raised by storage drivers
     ├── NetworkError                raised by network drivers
     ├── OSError_                    OS definition missing or script failed (name avoids
     │                               shadowing the builtin)
     ├── RPCError                    a node call failed (node answered with an error)
     │    └── NodeUnreachable        the node could not be reached in time
     ├── LockError                   lock acquisition failed or timed out
     ├── JobQueueError / JobLost / JobQueueDrainError / JobCanceled
     ├── ResolverError               a name does not resolve
     ├── TagError
     ├── CertificateError            TLS material missing or not trusted
     ├── LocalApiError               the CLI could not talk to masterd
     │    └── NoMasterError          no master daemon on this node
     ├── HooksAbort / HooksFailure   a pre hook failed / hooks could not run
     └── ProgrammerError             a bug; should never reach users

Every error carries a message fit for one line of CLI output; `OpPrereqError`
also carries Ganeti's error code (``wrong_input``, ``unknown_entity`` ...) which the
CLI prints as "error type: CODE, error details:". Errors cross process
boundaries (node RPC, local API) as ``[class name, args]`` pairs, see
`encode_exception` and `decode_exception`.
"""

from __future__ import annotations

from typing import Any

# OpPrereqError codes (Ganeti's ECODE_*)
ECODE_RESOLVER = "resolver_error"
ECODE_NORES = "insufficient_resources"
ECODE_TEMP_NORES = "temp_insufficient_resources"
ECODE_INVAL = "wrong_input"
ECODE_STATE = "wrong_state"
ECODE_NOENT = "unknown_entity"
ECODE_EXISTS = "already_exists"
ECODE_NOTUNIQUE = "resource_not_unique"
ECODE_FAULT = "internal_error"
ECODE_ENVIRON = "environment_error"


class GenericError(Exception):
    """Base of every corral error."""


class ConfigurationError(GenericError):
    pass


class ConfigVersionMismatch(ConfigurationError):
    pass


class OpPrereqError(GenericError):
    """A prerequisite failed: the operation did not start and changed nothing."""

    def __init__(self, msg: str, ecode: str | None = None) -> None:
        super().__init__(msg, ecode) if ecode else super().__init__(msg)
        self.msg = msg
        self.ecode = ecode

    def __str__(self) -> str:
        return self.msg


class OpExecError(GenericError):
    pass


class OpCodeUnknown(GenericError):
    pass


class ParameterError(GenericError):
    pass


class UnitParseError(GenericError):
    pass


class TypeEnforcementError(GenericError):
    pass


class HypervisorError(GenericError):
    pass


class BlockDeviceError(GenericError):
    pass


class NetworkError(GenericError):
    pass


class OSError_(GenericError):
    pass


class RPCError(GenericError):
    pass


class NodeUnreachable(RPCError):
    pass


class LockError(GenericError):
    pass


class JobQueueError(GenericError):
    pass


class JobLost(GenericError):
    pass


class JobQueueDrainError(JobQueueError):
    pass


class JobCanceled(GenericError):
    pass


class ResolverError(GenericError):
    pass


class TagError(GenericError):
    pass


class CertificateError(GenericError):
    pass


class LocalApiError(GenericError):
    pass


class NoMasterError(LocalApiError):
    pass


class ProgrammerError(GenericError):
    pass


class HooksAbort(GenericError):
    """A pre hook script failed, so the operation was not run."""


class HooksFailure(GenericError):
    """The hooks could not be run at all (e.g. RPC to the hook nodes failed)."""


def _all_error_classes() -> dict[str, type[GenericError]]:
    found: dict[str, type[GenericError]] = {}
    todo: list[type[GenericError]] = [GenericError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def encode_exception(err: BaseException) -> list[Any]:
    """Turn an exception into a JSON-friendly ``[class name, args]`` pair."""
    if isinstance(err, OpPrereqError):
        return [type(err).__name__, [err.msg, err.ecode] if err.ecode else [err.msg]]
    if isinstance(err, GenericError):
        return [type(err).__name__, [str(a) for a in err.args]]
    return ["OpExecError", [f"{type(err).__name__}: {err}"]]


def decode_exception(data: Any) -> GenericError:
    """Rebuild an exception encoded by `encode_exception` (unknown names -> OpExecError)."""
    try:
        name, args = data
        cls = _all_error_classes().get(str(name), OpExecError)
        return cls(*args)
    except (TypeError, ValueError):
        return OpExecError(str(data))
