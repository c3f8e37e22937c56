"""The kgattr command line."""
