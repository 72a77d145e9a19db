"""Reports: cost per token by group, FOCUS export, HTML charts."""
