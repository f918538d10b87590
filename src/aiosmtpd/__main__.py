"""``python -m aiosmtpd``: run the command line of :mod:`aiosmtpd.main`."""

from aiosmtpd.main import main

if __name__ == "__main__":
    main()
