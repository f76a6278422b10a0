"""A custom KEY_FUNCTION, importable by dotted path."""


def custom_key_func(key: str, key_prefix: str, version: int) -> str:
    """Make keys that differ from Django's default ``prefix:version:key``."""
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])
