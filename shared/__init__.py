"""kefu's platform under the services: the contract, NATS, HTTP, observability (see README.md here).

Nothing is imported here: `import shared.contract.models` loads the models and nothing else.
"""
