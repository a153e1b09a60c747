"""``python -m services.console``: run the staff console."""

from services.console.app import create_app

if __name__ == "__main__":
    create_app().run()
