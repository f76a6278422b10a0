"""``manage.py`` commands: ``cache_check``."""
