"""The Faust worker: a thin shell between Kafka topics, the RocksDB table and the core."""
