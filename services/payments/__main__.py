"""``python -m services.payments``: run the payments service."""

from services.payments.app import create_runtime

if __name__ == "__main__":
    create_runtime().run()
