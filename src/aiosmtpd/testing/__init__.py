"""Public test support for aiosmtpd users.

``aiosmtpd.testing.transport`` provides ``MemoryTransport`` and ``SMTPClient`` to drive
an ``SMTP``/``LMTP`` instance without sockets::

    from aiosmtpd.smtp import SMTP
    from aiosmtpd.testing.transport import SMTPClient

    async with SMTPClient(SMTP(MyHandler())) as client:
        code, text = await client.command("EHLO me")

``aiosmtpd.testing.helpers`` and ``aiosmtpd.testing.statuscodes`` keep aiosmtpd 1.4's
helpers. Importing this package imports nothing else (no loop, no sockets).
"""
