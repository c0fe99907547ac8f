"""dgm's version, in a module of its own so that any layer can name it without importing the
package root (whose :func:`dgm.train` reaches the top layer); pyproject.toml reads it too."""

__version__ = "0.1.0"
