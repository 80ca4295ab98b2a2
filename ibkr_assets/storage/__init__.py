"""Storage: the relational store (SQLAlchemy) and the object store (local folder or S3)."""
