"""``python -m services.webhooks``: run the webhooks service."""

from services.webhooks.app import create_runtime

if __name__ == "__main__":
    create_runtime().run()
