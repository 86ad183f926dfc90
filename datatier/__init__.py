"""datatier: keeps a company's data tier healthy and recoverable."""

__version__ = "0.1.0"
