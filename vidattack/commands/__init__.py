"""CLI commands contributed by feature modules, registered in `vidattack.cli`."""
