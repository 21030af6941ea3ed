package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chamber-court/chamber/fault"
)

// Classify gives a database error the kind a caller can act on: an outage
// (connection refused or lost, the server shutting down or not accepting
// connections, SQLite busy beyond its timeout, a call that ran out of time)
// is fault.Unavailable, a full disk is fault.InsufficientStorage. Anything
// else — a constraint violation, a serialization failure, a bug — is
// returned unchanged, as is an error that already has a kind. The cause
// stays in the chain for errors.Is and the log.
//
// Call it where a database error arises, so that an outage is answered
// 503 + Retry-After (and a signalling join "unavailable") rather than 500
// or, worse, "invalid token".
func Classify(err error) error {
	if err == nil || fault.KindOf(err) != fault.Internal {
		return err
	}
	switch {
	case full(err):
		return fault.Wrap(fault.InsufficientStorage, err, "the database has no room left")
	case outage(err):
		return fault.Wrap(fault.Unavailable, err, "the database is unavailable; retry")
	}
	return err
}

// full reports a disk or quota that is full.
func full(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "53100" { // disk_full
		return true
	}
	var lite *sqlite.Error
	return errors.As(err, &lite) && lite.Code()&0xff == sqlite3.SQLITE_FULL
}

// outage reports an error that says the database is not there to answer,
// rather than that the request was wrong.
func outage(err error) bool {
	var (
		pg      *pgconn.PgError
		connect *pgconn.ConnectError
		lite    *sqlite.Error
		netErr  net.Error
	)
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EIO):
		return true
	case errors.As(err, &connect), pgconn.Timeout(err), errors.As(err, &netErr):
		return true
	case errors.As(err, &pg):
		return pgOutage(pg.Code)
	case errors.As(err, &lite):
		switch lite.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY:
			return true
		}
	}
	// pgx reports a connection that died under a query as plain text.
	msg := err.Error()
	return strings.Contains(msg, "unexpected EOF") || strings.Contains(msg, "conn closed")
}

// pgOutage reports the SQLSTATEs of a server that cannot serve: class 08
// (connection exception), admin or crash shutdown, not yet accepting
// connections, and running out of connections or memory. Serialization
// failures and deadlocks (class 40) are not outages: the transaction lost
// a race and its caller decides.
func pgOutage(code string) bool {
	if strings.HasPrefix(code, "08") {
		return true
	}
	switch code {
	case "57P01", // admin_shutdown (also pg_terminate_backend)
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now
		"53200", // out_of_memory
		"53300": // too_many_connections
		return true
	}
	return false
}
