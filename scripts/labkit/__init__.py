"""The Caseline lab: a real Asterisk 22 (Debian sid root under chroot), Redis and SIPp on loopback."""
