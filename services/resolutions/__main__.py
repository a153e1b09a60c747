"""``python -m services.resolutions``: run the resolutions service."""

from services.resolutions.app import create_runtime

if __name__ == "__main__":
    create_runtime().run()
