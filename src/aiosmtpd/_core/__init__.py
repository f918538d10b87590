"""The sans-I/O SMTP protocol core.

Everything under ``aiosmtpd._core`` is pure: bytes in, events out, reply bytes back.  It
never imports asyncio, ssl, socket or logging, never performs I/O and never writes by
itself.  The asyncio adapter (``aiosmtpd.smtp``) drives it; tests drive it directly.
"""
