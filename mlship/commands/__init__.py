"""CLI command groups. Each module exposes ``register(app)`` and keeps heavy imports inside
its command functions so that ``mlship --help`` stays fast."""

MODULES = ("core", "local", "serving", "batch", "edge", "registry", "monitoring")
