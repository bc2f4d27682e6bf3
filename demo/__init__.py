"""`make demo`: each path adds one step module with ``run(ctx: DemoContext)``."""
