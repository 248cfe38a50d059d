"""Developer tools that write the repository's derived files (`python -m hvr.tools.<tool>`); the runtime never
imports them."""
