"""The tools around the runtime (`router`): the CLI, the demo, the embedded stack, the provider sandboxes and the
routing simulator. They import the runtime; the runtime never imports them, and none of it ships to Lambda."""
