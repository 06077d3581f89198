"""The RabbitMQ broker: jobs live in a companion store, RabbitMQ carries the tickets that say
a job of a queue is claimable (see docs/brokers/rabbitmq.md)."""
