-- 004_chat_users: the users of the chat and IM server (chatd), in their own
-- schema "chat", apart from the compliance tables in "chatvault": the
-- archive never reads them, and retention, export and verify never touch
-- them.
--
-- No password is ever stored.  ha1 is the HTTP digest credential of RFC
-- 2617 / 7616, hex MD5(user:realm:password).  It is password-equivalent for
-- this realm (whoever holds it can answer a digest challenge of the realm),
-- so the table must be protected like a password file.  It is bound to the
-- realm it was computed for, so the realm is stored beside it: when the
-- configured chat.realm differs, the user cannot sign in until a new
-- password is set (chatd warns at load).
CREATE SCHEMA chat;

CREATE TABLE chat.users (
    -- sip:user@domain, lower case, the user part 1..64 of a conservative
    -- character set, the domain DNS labels (chat/chat_store.c checks the
    -- same rules with clearer messages; this is the last line of defence).
    uri          text        PRIMARY KEY
                             CHECK (length(uri) <= 322
                                    AND uri ~ '^sip:[a-z0-9._+-]{1,64}@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$'),
    ha1          text        NOT NULL CHECK (ha1 ~ '^[0-9a-f]{32}$'),
    realm        text        NOT NULL CHECK (realm <> ''),
    disabled     boolean     NOT NULL DEFAULT false,
    chat_enabled boolean     NOT NULL DEFAULT true,
    im_enabled   boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- updated_at follows every change.
CREATE FUNCTION chat.users_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER users_touch BEFORE UPDATE ON chat.users
    FOR EACH ROW EXECUTE FUNCTION chat.users_touch();

-- A running chatd LISTENs on "chat_users" and reloads the users it is told
-- about (the payload is the URI; never the credential).  Notifications are
-- sent at commit, so a listener never sees a change that rolled back.
CREATE FUNCTION chat.users_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('chat_users', OLD.uri);
    ELSE
        PERFORM pg_notify('chat_users', NEW.uri);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE ON chat.users
    FOR EACH ROW EXECUTE FUNCTION chat.users_notify();
