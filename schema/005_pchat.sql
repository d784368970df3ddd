-- 005_pchat: the persistent chat server's own store (chat/chat_rooms.c),
-- in its own schema "pchat", apart from the compliance pipeline's
-- "chatvault" schema.  Users are identified by their SIP URI as text: the
-- users table belongs to the SIP server (migration 004) and this schema
-- deliberately has no foreign key to it, so either can be applied first.
--
-- What a client sees through XCCOS lives here (rooms, membership, history,
-- preferences, file tokens); what an auditor sees is the event stream
-- (chat.post, chat.join, chat.file.upload, ...), never these tables.
CREATE SCHEMA IF NOT EXISTS pchat;

-- A chat room (a "channel").  uri = ma-chan://<domain>/<guid>, the id every
-- XCCOS command uses; the name is unique per domain, ignoring case.
CREATE TABLE pchat.rooms (
	uri         text PRIMARY KEY CHECK (uri ~ '^ma-chan://[^/]+/[^/]+$'),
	domain      text NOT NULL CHECK (domain <> '' AND uri = 'ma-chan://' || domain || '/' || guid),
	guid        text NOT NULL UNIQUE CHECK (guid ~ '^[0-9a-f-]{1,64}$'),
	name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
	description text NOT NULL DEFAULT '',
	topic       text NOT NULL DEFAULT '',
	private     boolean NOT NULL DEFAULT false,   -- invisible to non-members
	logged      boolean NOT NULL DEFAULT true,    -- history kept for bccontext
	last_msg_id bigint NOT NULL DEFAULT 0,        -- per-room message counter
	created     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX rooms_domain_name ON pchat.rooms (domain, lower(name));

-- Who may enter a room (members) and administer it (managers).  A manager
-- need not be a member; both see a private room.
CREATE TABLE pchat.members (
	room     text NOT NULL REFERENCES pchat.rooms (uri) ON DELETE CASCADE,
	user_uri text NOT NULL CHECK (user_uri <> ''),
	added    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (room, user_uri)
);
CREATE INDEX members_user ON pchat.members (user_uri);

CREATE TABLE pchat.managers (
	room     text NOT NULL REFERENCES pchat.rooms (uri) ON DELETE CASCADE,
	user_uri text NOT NULL CHECK (user_uri <> ''),
	added    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (room, user_uri)
);
CREATE INDEX managers_user ON pchat.managers (user_uri);

-- Open invitations (cmd:getinv); one per room and user.
CREATE TABLE pchat.invitations (
	room       text NOT NULL REFERENCES pchat.rooms (uri) ON DELETE CASCADE,
	user_uri   text NOT NULL CHECK (user_uri <> ''),
	invited_by text,
	created    timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (room, user_uri)
);
CREATE INDEX invitations_user ON pchat.invitations (user_uri);

-- Room history for cmd:bccontext: ids are dense per room, taken from
-- rooms.last_msg_id in the inserting statement (the row lock orders the
-- posts of one room); the primary key serves "last N of a room".
CREATE TABLE pchat.messages (
	room   text NOT NULL REFERENCES pchat.rooms (uri) ON DELETE CASCADE,
	id     bigint NOT NULL CHECK (id > 0),
	author text NOT NULL,
	ts     timestamptz NOT NULL DEFAULT now(),
	text   text NOT NULL,
	PRIMARY KEY (room, id)
);

-- Client preferences (cmd:getpref/setpref): opaque bytes per user and label
-- (base64 on the wire), with a version the server increments.
CREATE TABLE pchat.preferences (
	user_uri text NOT NULL,
	label    text NOT NULL CHECK (length(label) BETWEEN 1 AND 256),
	seqid    bigint NOT NULL,
	content  bytea NOT NULL,
	updated  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (user_uri, label)
);

-- Files posted to rooms (the latest upload under each name), stored by
-- SHA-256 in the file store as <store>/<sha256>.
CREATE TABLE pchat.files (
	room     text NOT NULL REFERENCES pchat.rooms (uri) ON DELETE CASCADE,
	name     text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
	sha256   text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
	size     bigint NOT NULL CHECK (size >= 0),
	uploader text NOT NULL,
	uploaded timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (room, name)
);

-- Single-use file transfer tokens (cmd:getfutok/getfdtok): 128 random bits
-- as hex, valid 30 minutes.  Consumed by one statement
--   UPDATE ... SET used_at = now() WHERE token = $1 AND used_at IS NULL
--          AND expires_at > now() RETURNING ...
-- so two requests racing with one token cannot both win.
CREATE TABLE pchat.file_tokens (
	token      text PRIMARY KEY CHECK (token ~ '^[0-9a-f]{32}$'),
	kind       text NOT NULL CHECK (kind IN ('upload', 'download')),
	user_uri   text NOT NULL,
	room       text NOT NULL REFERENCES pchat.rooms (uri) ON DELETE CASCADE,
	file_name  text NOT NULL CHECK (length(file_name) BETWEEN 1 AND 255),
	sha256     text CHECK (sha256 ~ '^[0-9a-f]{64}$'),  -- download: the file; upload: once stored
	size       bigint,
	created    timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL DEFAULT now() + interval '30 minutes',
	used_at    timestamptz
);
CREATE INDEX file_tokens_expires ON pchat.file_tokens (expires_at);
