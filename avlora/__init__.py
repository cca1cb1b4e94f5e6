"""The ``avlora`` command: the composition root that starts the studio's processes (``serve``:
web + migrations + embedded worker; ``worker``) and registers the engine's and the speech layer's
sub-commands. The only package that may import both ``app`` and ``worker`` (each lazily)."""
