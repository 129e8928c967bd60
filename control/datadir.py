"""The data directory holds personal data (the subscribers' numbers in the outbox, the trigger log,
the journal, the lists): whatever the umask, it is made 0700 and everything in it 0600.

    private(data_dir)       # before anything is written there

It sets the process's umask to 077 (every file and directory this process creates from then on is
its owner's alone: SQLite's, numpy's and the log's files alike) and tightens a data directory of
this user's that an earlier release made wider.
"""
import os

UMASK = 0o077


def private(data_dir) -> str:
    os.umask(UMASK)
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    st = os.stat(data_dir)
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        os.chmod(data_dir, 0o700)
    return str(data_dir)
