"""The outbox: every message the dispatcher decided on, persisted before anything is sent.

`DATA/outbox.sqlite` (WAL, synchronous=FULL: a committed state survives a crash of the process
or the machine). Table `messages` is the only store of messages and the contact history;
`optouts` and `campaign_state` hold what ctl (and MO replies) set; `offsets` how far the
trigger log has been read, committed with the messages it gave; `conversions` the attribution
windows of campaign goals (control.goals).

A message's life: pending → queued → sending → sent → delivered | failed, or expired, or
suppressed / rejected, each with its reason. The id is the idempotency key
(control.policy.message_id): a trigger offered twice is one message.

Not thread-safe: the dispatcher holds one lock around every call.
"""
import os
import sqlite3

import numpy as np

from touchpoint.probe.record import pack

from .datadir import private

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,            -- sha1(campaign|imsi-or-msisdn|trigger ts_ns)
    campaign TEXT NOT NULL,
    event TEXT NOT NULL,
    imsi TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    trigger_ns INTEGER NOT NULL,
    deadline_ns INTEGER NOT NULL,
    due_ns INTEGER,                 -- queued: when it may go out (quiet hours defer it); held out: would have
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    parts INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    smsc_id TEXT,
    sent_ns INTEGER,
    done_ns INTEGER,
    holdout INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0
);
-- (state, due_ns) with what the contact history is rebuilt from: read from the index alone
CREATE INDEX IF NOT EXISTS messages_state_due ON messages (state, due_ns, msisdn, campaign);
CREATE INDEX IF NOT EXISTS messages_trigger ON messages (trigger_ns);
CREATE INDEX IF NOT EXISTS messages_msisdn_sent ON messages (msisdn, sent_ns);
CREATE INDEX IF NOT EXISTS messages_campaign_sent ON messages (campaign, sent_ns);
CREATE INDEX IF NOT EXISTS messages_smsc_id ON messages (smsc_id);
CREATE TABLE IF NOT EXISTS optouts (
    msisdn TEXT NOT NULL,
    campaign TEXT NOT NULL,         -- a campaign id, or '*': all of them
    source TEXT NOT NULL,           -- ctl | mo | list
    at INTEGER NOT NULL,
    PRIMARY KEY (msisdn, campaign)
);
CREATE TABLE IF NOT EXISTS campaign_state (
    campaign TEXT PRIMARY KEY,
    status TEXT NOT NULL,           -- paused (by ctl; resume removes the row)
    at INTEGER NOT NULL
);
-- Attribution windows (control.goals): one per contacted or held-out message of a campaign with
-- a goal, from its contact (sent_ns) or, held out, when it would have gone out (due_ns), for goal.within.
CREATE TABLE IF NOT EXISTS conversions (
    message TEXT PRIMARY KEY,       -- messages.id
    campaign TEXT NOT NULL,
    imsi TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    holdout INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    converted_ns INTEGER            -- the first goal event in [start_ns, end_ns]; NULL: none (yet)
);
CREATE INDEX IF NOT EXISTS conversions_open ON conversions (end_ns) WHERE converted_ns IS NULL;
CREATE INDEX IF NOT EXISTS conversions_campaign ON conversions (campaign, holdout, start_ns);
-- MO replies (control.dispatcher.mo), attributed to the message they answer ('' if none): never
-- their text, only the reply word when it is one a goal or the opt-outs name.
CREATE TABLE IF NOT EXISTS replies (
    msisdn TEXT NOT NULL,
    at_ns INTEGER NOT NULL,
    campaign TEXT NOT NULL,
    message TEXT NOT NULL,
    word TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_message ON replies (message);
CREATE TABLE IF NOT EXISTS offsets (
    source TEXT PRIMARY KEY,        -- a trigger log's path
    position INTEGER NOT NULL       -- bytes of it offered
);
"""

# Messages that were (or are to be) handed to a channel: what caps, cooldowns and quotas count.
CONTACT_STATES = ("queued", "sending", "sent", "delivered", "failed")
FINAL_STATES = ("sent", "delivered", "failed", "expired", "suppressed", "rejected")
COLUMNS = ("id", "campaign", "event", "imsi", "msisdn", "created_ns", "trigger_ns", "deadline_ns", "due_ns", "state",
           "reason", "channel", "source", "text", "holdout", "priority")


def _in(values) -> str:
    return "(" + ",".join("?" * len(values)) + ")"


class Outbox:
    def __init__(self, data_dir: str):
        private(data_dir)
        self.path = os.path.join(data_dir, "outbox.sqlite")
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def tx(self):
        """`with outbox.tx():` one transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error)."""
        return _Tx(self.db)

    # ---- offering ---------------------------------------------------------------------------------------

    def known(self, ids: list) -> set:
        """Which of these message ids are in the outbox already."""
        out = set()
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            out.update(r[0] for r in self.db.execute(f"SELECT id FROM messages WHERE id IN {_in(part)}", part))
        return out

    def insert(self, decisions: list, now_ns: int) -> None:
        rows = [(d.id, d.trigger.campaign, d.trigger.event, d.trigger.imsi, d.trigger.msisdn, now_ns, d.trigger.ts_ns,
                 d.trigger.deadline_ns, d.due_ns, d.state, d.reason, d.channel, d.source, d.text, d.holdout,
                 d.trigger.priority) for d in decisions]
        done = [now_ns if d.state in FINAL_STATES else None for d in decisions]
        self.db.executemany(f"INSERT OR IGNORE INTO messages ({','.join(COLUMNS)}, done_ns) "
                            f"VALUES ({','.join('?' * (len(COLUMNS) + 1))})", [r + (x,) for r, x in zip(rows, done)])

    def offset(self, source: str) -> int:
        row = self.db.execute("SELECT position FROM offsets WHERE source = ?", (source,)).fetchone()
        return row[0] if row else 0

    def set_offset(self, source: str, position: int) -> None:
        self.db.execute(
            "INSERT INTO offsets VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET position = excluded.position",
            (source, position),
        )

    # ---- sending ---------------------------------------------------------------------------------------

    def due(self, channel: str, now_ns: int, limit: int, held=()) -> list:
        """Up to `limit` queued messages of a channel due by now, not of the held campaigns:
        highest priority, then oldest due."""
        held = list(held)
        return self.db.execute(
            "SELECT id, msisdn, source, text, campaign, deadline_ns, due_ns, attempts FROM messages "
            f"WHERE state = 'queued' AND due_ns <= ? AND channel = ? AND campaign NOT IN {_in(held)} "
            "ORDER BY priority DESC, due_ns LIMIT ?",
            (now_ns, channel, *held, limit),
        ).fetchall()

    def mark(self, ids: list, state: str, reason: str = "", now_ns: int | None = None, where: str = "",
             **set_) -> int:
        """Set the state (and reason, other columns) of these messages; `where` limits it further
        (e.g. "state = 'queued'"). Returns how many changed."""
        cols = {"state": state, "reason": reason, **set_}
        if state in FINAL_STATES and now_ns is not None:
            cols["done_ns"] = now_ns
        sql = f"UPDATE messages SET {', '.join(f'{k} = ?' for k in cols)} WHERE id = ?" + (
            f" AND {where}" if where else ""
        )
        n = 0
        for i in ids:
            n += self.db.execute(sql, (*cols.values(), i)).rowcount
        return n

    def sending(self, ids: list) -> None:
        self.db.executemany("UPDATE messages SET state = 'sending', attempts = attempts + 1 WHERE id = ?",
                            [(i,) for i in ids])

    def get(self, message_id: str | None, smsc_id: str | None = None):
        """(id, state, msisdn, due_ns, campaign, attempts, deadline_ns) by id, else by the SMSC's id."""
        cols = "id, state, msisdn, due_ns, campaign, attempts, deadline_ns"
        if message_id:
            return self.db.execute(f"SELECT {cols} FROM messages WHERE id = ?", (message_id,)).fetchone()
        return self.db.execute(f"SELECT {cols} FROM messages WHERE smsc_id = ? ORDER BY sent_ns DESC LIMIT 1",
                               (smsc_id,)).fetchone()

    def state_of(self, message_id: str) -> str | None:
        row = self.db.execute("SELECT state FROM messages WHERE id = ?", (message_id,)).fetchone()
        return row[0] if row else None

    def next_due(self, after_ns: int, before_ns: int) -> int | None:
        """The earliest due time of a queued message in (after_ns, before_ns), or None."""
        return self.db.execute("SELECT MIN(due_ns) FROM messages WHERE state = 'queued' AND due_ns > ? "
                               "AND due_ns < ?", (after_ns, before_ns)).fetchone()[0]

    def overdue(self, now_ns: int) -> list:
        """Queued and pending messages whose window has closed: (id, msisdn, due_ns, campaign, state)."""
        return self.db.execute("SELECT id, msisdn, due_ns, campaign, state FROM messages "
                               "WHERE state IN ('queued', 'pending') AND deadline_ns < ?", (now_ns,)).fetchall()

    def in_state(self, state: str) -> list:
        return self.db.execute("SELECT id, channel, msisdn, due_ns, campaign FROM messages WHERE state = ?",
                               (state,)).fetchall()

    # ---- what the policy rebuilds from -----------------------------------------------------------------

    def contacts(self, since_ns: int):
        """The contact history since since_ns: (campaign ids, packed MSISDNs, due times, campaign
        codes, held out): the messages queued and not taken back, and the held-out triggers that
        would have been sent (control.policy)."""
        names, keys, due, camp, held = {}, [], [], [], []
        cur = self.db.execute(f"SELECT msisdn, due_ns, campaign, 0 FROM messages WHERE state IN {_in(CONTACT_STATES)} "
                              "AND due_ns >= ? UNION ALL SELECT msisdn, due_ns, campaign, 1 FROM messages "
                              "WHERE state = 'suppressed' AND due_ns >= ? AND reason = 'holdout' AND holdout = 1",
                              (*CONTACT_STATES, since_ns, since_ns))
        while True:
            rows = cur.fetchmany(1 << 18)
            if not rows:
                break
            m, d, c, h = zip(*rows)
            keys.append(pack(list(m)))
            due.append(np.array(d, np.int64))
            camp.append(np.array([names.setdefault(x, len(names)) for x in c], np.int32))
            held.append(np.array(h, bool))
        cat = lambda parts, dt: np.concatenate(parts) if parts else np.empty(0, dt)
        return list(names), cat(keys, np.uint64), cat(due, np.int64), cat(camp, np.int32), cat(held, bool)

    def queued_since(self, since_ns: int) -> list:
        """(campaign, due_ns) of the contacts due since since_ns: what daily quotas count."""
        return self.db.execute(f"SELECT campaign, due_ns FROM messages WHERE state IN {_in(CONTACT_STATES)} "
                               "AND due_ns >= ?", (*CONTACT_STATES, since_ns)).fetchall()

    def winners_since(self, since_ns: int) -> list:
        """Recent messages that won arbitration, and held-out triggers that would have, in trigger
        order: (msisdn, trigger_ns, priority, id, campaign, due_ns, holdout)."""
        return self.db.execute(f"SELECT msisdn, trigger_ns, priority, id, campaign, due_ns, holdout FROM messages "
                               f"WHERE (state IN ('pending', {','.join('?' * len(CONTACT_STATES))}) "
                               "OR (state = 'suppressed' AND reason = 'holdout' AND due_ns IS NOT NULL)) "
                               "AND trigger_ns >= ? AND msisdn != '' ORDER BY trigger_ns",
                               (*CONTACT_STATES, since_ns)).fetchall()

    def latest_trigger_ns(self) -> int:
        return self.db.execute("SELECT coalesce(max(trigger_ns), 0) FROM messages").fetchone()[0]

    # ---- opt-outs and campaign overrides -------------------------------------------------------------

    def optouts(self) -> list:
        return self.db.execute("SELECT msisdn, campaign FROM optouts").fetchall()

    def optout_rows(self, msisdn: str) -> list:
        return self.db.execute("SELECT campaign, source, at FROM optouts WHERE msisdn = ? ORDER BY campaign",
                               (msisdn,)).fetchall()

    def add_optout(self, msisdn: str, campaign: str, source: str, at_ns: int) -> bool:
        return self.db.execute("INSERT OR IGNORE INTO optouts VALUES (?, ?, ?, ?)",
                               (msisdn, campaign, source, at_ns)).rowcount > 0

    def remove_optout(self, msisdn: str, campaign: str | None) -> int:
        if campaign is None:
            return self.db.execute("DELETE FROM optouts WHERE msisdn = ?", (msisdn,)).rowcount
        return self.db.execute("DELETE FROM optouts WHERE msisdn = ? AND campaign = ?", (msisdn, campaign)).rowcount

    def paused(self) -> list:
        return [r[0] for r in self.db.execute("SELECT campaign FROM campaign_state WHERE status = 'paused'")]

    def set_paused(self, campaign: str, paused: bool, at_ns: int) -> bool:
        if paused:
            return self.db.execute("INSERT OR IGNORE INTO campaign_state VALUES (?, 'paused', ?)",
                                   (campaign, at_ns)).rowcount > 0
        return self.db.execute("DELETE FROM campaign_state WHERE campaign = ?", (campaign,)).rowcount > 0

    # ---- pending (approve mode) ------------------------------------------------------------------------

    def pending(self, campaign: str | None = None, ids: list | None = None, limit: int | None = None) -> list:
        """Pending messages as dicts, oldest trigger first."""
        sql, args = "SELECT * FROM messages WHERE state = 'pending'", []
        if campaign:
            sql, args = sql + " AND campaign = ?", [campaign]
        if ids:
            sql, args = sql + f" AND id IN {_in(ids)}", args + list(ids)
        sql += " ORDER BY trigger_ns" + (f" LIMIT {int(limit)}" if limit else "")
        cur = self.db.execute(sql, args)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def reply(self, msisdn: str, to: str, at_ns: int, word: str) -> tuple:
        """Record an MO reply, attributed to the last message sent to msisdn from the address it
        was sent to (`to` equal to the message's source, or the source followed by an extension:
        a service code's sub-codes); with no `to`, the last message sent. Returns (campaign,
        message id), ('', '') when no message was sent to it."""
        found = ("", "")
        for mid, cid, source in self.db.execute(
                "SELECT id, campaign, source FROM messages WHERE msisdn = ? AND sent_ns IS NOT NULL AND holdout = 0 "
                "AND sent_ns <= ? ORDER BY sent_ns DESC LIMIT 100", (msisdn, at_ns)):
            if not to or (source and to.startswith(source)):
                found = (cid, mid)
                break
        self.db.execute("INSERT INTO replies VALUES (?, ?, ?, ?, ?)", (msisdn, at_ns, *found, word))
        return found

    def expired_unapproved(self, campaign: str | None = None) -> tuple:
        """(how many messages expired waiting for an approval, when the last did: ns or None)."""
        sql = "SELECT count(*), max(done_ns) FROM messages WHERE state = 'expired' AND reason = 'unapproved'"
        return tuple(self.db.execute(sql + (" AND campaign = ?" if campaign else ""),
                                     (campaign,) if campaign else ()).fetchone())

    def trail(self, msisdn: str, limit: int = 50) -> list:
        """A subscriber's messages, newest trigger first, with their outcome (conversion)."""
        cur = self.db.execute(
            "SELECT m.campaign, m.event, m.trigger_ns, m.state, m.reason, m.channel, m.sent_ns, m.done_ns, m.holdout,"
            " c.converted_ns FROM messages m LEFT JOIN conversions c ON c.message = m.id"
            " WHERE m.msisdn = ? ORDER BY m.trigger_ns DESC LIMIT ?", (msisdn, int(limit)))
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    # ---- status --------------------------------------------------------------------------------------------

    def counts(self) -> list:
        """(campaign, channel, state, reason, messages)."""
        return self.db.execute("SELECT campaign, channel, state, reason, count(*) FROM messages "
                               "GROUP BY campaign, channel, state, reason").fetchall()


class _Tx:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, tb):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        return False
