package main

// quota.go: how much one account may keep, and its running totals.
//
// Without a bound, one account could fill the disk and make every query
// over its notes slower (a search that matches nothing reads them all).
// users.notes_count and users.notes_bytes keep the totals, changed in the
// same transaction as the notes, so the check costs one row however many
// notes there are. The write throttle (throttle.go) bounds how fast an
// account can get there.
//
// It knows the two totals and the flags that bound them.

import (
	"context"
	"database/sql"
	"errors"
	"math"
)

// quota is how much one account may keep: notes, and the bytes of their
// titles, bodies and images. users.notes_count and users.notes_bytes keep
// the running totals, changed in the same transaction as the notes, so the
// check costs one row however many notes there are.
type quota struct {
	notes int64
	bytes int64
}

// Errors of a write that the quota refuses.
var (
	errTooManyNotes = errors.New("note quota reached")
	errTooManyBytes = errors.New("storage quota reached")
)

// noteSize is what a note counts against its owner's bytes.
func noteSize(title, body string, imageBytes int) int64 {
	return int64(len(title) + len(body) + imageBytes)
}

// chargeNotes adds notes and bytes to user id's totals if they stay within
// q, or says why not: errUserGone, errTooManyNotes, errTooManyBytes. A
// negative change always fits.
func chargeNotes(ctx context.Context, tx *txn, id, notes, bytes int64, q quota) error {
	res, err := tx.ExecContext(ctx, `UPDATE users SET notes_count = notes_count + :notes,
			notes_bytes = notes_bytes + :bytes
		WHERE id = :id AND (:notes <= 0 OR notes_count + :notes <= :max_notes)
			AND (:bytes <= 0 OR notes_bytes + :bytes <= :max_bytes)`,
		sql.Named("notes", notes), sql.Named("bytes", bytes), sql.Named("id", id),
		sql.Named("max_notes", q.notes), sql.Named("max_bytes", q.bytes))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var count, used int64
	err = tx.QueryRowContext(ctx, `SELECT notes_count, notes_bytes FROM users WHERE id = ?`, id).Scan(&count, &used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return errUserGone
	case err != nil:
		return err
	case notes > 0 && count+notes > q.notes:
		return errTooManyNotes
	}
	return errTooManyBytes
}

// quota is how much one account may keep (-max-notes, -max-notes-mb; 0 is
// no limit).
func (s *server) quota() quota {
	q := quota{notes: int64(s.cfg.maxNotes), bytes: int64(s.cfg.maxNotesMB) << 20}
	if q.notes == 0 {
		q.notes = math.MaxInt64
	}
	if q.bytes == 0 {
		q.bytes = math.MaxInt64
	}
	return q
}
