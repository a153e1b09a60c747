"""``python -m services.registration``: run the registration service."""

from services.registration.app import create_runtime

if __name__ == "__main__":
    create_runtime().run()
