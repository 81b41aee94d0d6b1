"""annotation-reconciler: keeps the CryoET Data Portal's annotation rows true to its S3 bucket."""

__version__ = "0.1.0"
