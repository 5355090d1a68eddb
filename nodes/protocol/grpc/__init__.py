"""seed 002's gRPC service (``wia.federatedlearning.v1.FederatedLearning``) in front of the device
protocol's services. The proto is ``protos/wia/federatedlearning/v1/federated_learning.proto``;
``federated_learning_pb2*.py`` are generated from it by ``make protos`` (do not edit them).

Importing this package imports nothing else: the generated modules are usable without Django
(a Python device can take its client stub from here).
"""
