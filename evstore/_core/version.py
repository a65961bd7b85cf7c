"""The package's version, in one place: the build reads it here (``pyproject.toml``), and
``evstore.__version__`` and ``evstore --version`` without a package-metadata lookup."""

__version__ = "0.1.0"
