"""The pure grading core: state, policy and grades. Knows nothing of Kafka or Redis."""
