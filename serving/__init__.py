"""What runs next to live traffic: the gRPC server and its client."""
