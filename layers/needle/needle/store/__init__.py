"""DynamoDB and S3 adapters: the only code that knows table and bucket layouts."""
