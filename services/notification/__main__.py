"""``python -m services.notification``: run the notification service."""

from services.notification.app import create_runtime

if __name__ == "__main__":
    create_runtime().run()
