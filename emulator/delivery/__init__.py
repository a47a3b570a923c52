"""Delivery to the application's webhook (SPEC 5.4): handshake, verification-token, ordered retries, pushes."""

from emulator.delivery.schedule import RETRY_DELAYS, delay_after
from emulator.delivery.service import Delivery

__all__ = ["RETRY_DELAYS", "Delivery", "delay_after"]
