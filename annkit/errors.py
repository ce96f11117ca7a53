"""User-facing errors. Every message is one line a user can act on."""


class AnnkitError(Exception):
    """Base class of every error annkit reports to a user (exit code 2 in the CLI)."""

    exit_code = 2


class InputError(AnnkitError):
    """A file or argument the user gave is missing, malformed or inconsistent."""


class DatasetError(InputError):
    """A vector or dataset file cannot be read or fails validation."""


class BundleError(InputError):
    """An index bundle is missing, damaged or incompatible."""


class ParamError(InputError):
    """An unknown engine or an invalid build / query parameter."""


class EngineError(AnnkitError):
    """The native library failed while building or searching."""


class ResourceError(AnnkitError):
    """The requested work needs more memory or disk than is available."""


class GateFailure(AnnkitError):
    """A regression gate failed (exit code 1)."""

    exit_code = 1


class TargetNotMet(AnnkitError):
    """No setting reached the requested target, e.g. tune's recall (exit code 1)."""

    exit_code = 1
