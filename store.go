package main

// store.go: everything jwtnotes keeps, in one SQLite file.
//
// It knows SQL, not HTTP. Methods take ctx first, use ? placeholders and
// return domain structs or named errors. Reads go through a pool of
// connections that run in parallel (WAL lets readers run beside the writer);
// writes go to one writer goroutine on a pool of exactly one connection, so
// they queue in Go instead of failing with "database is locked", and the
// writer commits the writes that queued together in one transaction (group
// commit, below); a checkpointer goroutine copies the WAL back on its own
// connection, so that no write waits for the disk. Each transaction starts
// with BEGIN IMMEDIATE so that another process (jwtnotes
// flushexpiredtokens) waits its turn through busy_timeout.

import (
	"cmp"
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed schema.sql
var schemaSQL string

// Errors the store returns; handlers turn them into the contract's answers.
var (
	errNotFound      = errors.New("not found")
	errUsernameTaken = errors.New("username taken")
	errEmailTaken    = errors.New("email taken")
)

// user is a row of users, without the password hash: that stays in the
// store and in login.
type user struct {
	ID         int64
	Username   string
	Email      string
	FirstName  string
	LastName   string
	Bio        string
	CoverPhoto string // "" when there is none
	IsActive   bool
	DateJoined time.Time
	LastLogin  time.Time // zero until the first login
}

// session is one login: the tokens it issues all carry its ID as sid.
type session struct {
	ID        string
	UserID    int64
	Created   time.Time
	LastUsed  time.Time
	Expires   time.Time
	UserAgent string
	IP        string
}

type store struct {
	read  *pool    // many connections, query_only
	write *pool    // exactly one connection, used by the writer goroutine only
	media *os.Root // DATA_DIR/media: uploaded images; nothing outside it can be reached

	checkpoint *sql.DB // one connection, used by the checkpointer goroutine only

	writes        chan writeJob  // inWriteTx to the writer goroutine (unbuffered)
	checkpointDue chan struct{}  // the writer to the checkpointer: there are new commits
	closing       chan struct{}  // closed by Close: the goroutines stop
	background    sync.WaitGroup // the writer and the checkpointer
	commits       atomic.Int64   // transactions committed by the writer
	committed     atomic.Int64   // writes in them: committed/commits is the mean batch
	checkpointed  atomic.Int64   // checkpoints run
}

// openStore opens (creating if needed) the database dataDir/notes.db, brings
// its schema up to date, and opens the media folder dataDir/media.
func openStore(ctx context.Context, dataDir string) (*store, error) {
	media, err := openMedia(dataDir)
	if err != nil {
		return nil, err
	}
	st, err := openDB(ctx, filepath.Join(dataDir, "notes.db"))
	if err != nil {
		media.Close()
		return nil, err
	}
	st.media = media
	return st, nil
}

// openDB opens the database at path with its two pools.
func openDB(ctx context.Context, path string) (*store, error) {
	// Pragmas go in the DSN so that every pooled connection gets them; a
	// db.Exec("PRAGMA ...") would reach one connection only.
	// cache_size: 1 MiB of pages per connection, not SQLite's 2 MiB: the
	// hot pages fit, and the cache is memory outside Go's limit, once per
	// connection.
	// wal_autocheckpoint(0): the writer never checkpoints; the checkpointer
	// does (see checkpoints).
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-1024)"
	write, err := sql.Open("sqlite", dsn(path, common+"&_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(0)&_txlock=immediate"))
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, err
	}
	read, err := sql.Open("sqlite", dsn(path, common+"&_pragma=query_only(1)"))
	if err != nil {
		write.Close()
		return nil, err
	}
	readers := max(4, 2*runtime.NumCPU())
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	checkpoint, err := sql.Open("sqlite", dsn(path, common))
	if err != nil {
		write.Close()
		read.Close()
		return nil, err
	}
	checkpoint.SetMaxOpenConns(1)
	s := &store{read: newPool(read), write: newPool(write), checkpoint: checkpoint,
		writes: make(chan writeJob), closing: make(chan struct{}),
		checkpointDue: make(chan struct{}, 1)}
	s.background.Add(2)
	go s.writer()
	go s.checkpoints()
	return s, nil
}

// dsn builds a modernc.org/sqlite data source name for a file path.
func dsn(path, query string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + query
}

// Close stops the writer (after the batch in progress, if any) and the
// checkpointer, and closes everything. Writes that arrive later get
// errStoreClosed.
func (s *store) Close() error {
	close(s.closing)
	s.background.Wait()
	return errors.Join(s.read.close(), s.write.close(), s.checkpoint.Close(), s.media.Close())
}

// ping checks that the database answers (GET /healthz).
func (s *store) ping(ctx context.Context) error {
	return s.read.PingContext(ctx)
}

// migrate applies the sections of schema.sql that the database has not seen,
// each in its own transaction together with its PRAGMA user_version.
func migrate(ctx context.Context, db *sql.DB) error {
	var have int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	for i, section := range schemaSections() {
		version := i + 1 // in order: each section builds on the one before
		if version <= have {
			continue
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, section); err != nil {
			tx.Rollback()
			return fmt.Errorf("schema version %d: %w", version, err)
		}
		// PRAGMA takes no placeholders; version is an int we produced.
		if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(version)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// schemaSections splits schema.sql at its "-- version N" lines: the
// section of version N is at index N-1.
func schemaSections() []string {
	var sections []string
	for _, line := range strings.SplitAfter(schemaSQL, "\n") {
		if _, ok := strings.CutPrefix(strings.TrimSpace(line), "-- version "); ok {
			sections = append(sections, "")
			continue
		}
		if len(sections) > 0 {
			sections[len(sections)-1] += line
		}
	}
	return sections
}

// ---- writes: group commit ----
//
// SQLite has one writer at a time, and in WAL mode most of what a small
// write transaction costs is fixed: BEGIN IMMEDIATE, then at COMMIT the
// changed pages appended to the log. So writes are not run one transaction
// each. Requests hand their write (a function of a *txn) to one writer
// goroutine; it takes every write that is waiting, runs them one after
// another in a single transaction, each inside its own SAVEPOINT, and
// commits once. A write whose function fails is rolled back to its
// savepoint alone; the others commit. No request is answered before the
// COMMIT that holds its write, so a success is as durable as before, and
// an idle server still commits each write at once: a batch is whatever
// queued while the previous one ran, never a wait for more.

// errStoreClosed answers a write that arrives after Close.
var errStoreClosed = errors.New("store closed")

// maxBatch bounds how many writes share one transaction (and so how long
// the last of them waits for the COMMIT).
const maxBatch = 64

// writeJob is one request's write transaction, queued for the writer.
type writeJob struct {
	ctx  context.Context
	fn   func(tx *txn) error
	done chan error // receives fn's result once its batch has committed or failed
}

// inWriteTx runs fn in a write transaction and commits if fn returns nil.
// fn may share the transaction with other requests' writes (see above), so
// it must not keep state between calls or wait on anything but the database.
func (s *store) inWriteTx(ctx context.Context, fn func(tx *txn) error) error {
	job := writeJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- job:
		return <-job.done // the writer answers every job it took
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return errStoreClosed
	}
}

// writer runs the batches until Close.
func (s *store) writer() {
	defer s.background.Done()
	batch := make([]writeJob, 0, maxBatch)
	for {
		select {
		case job := <-s.writes:
			batch = append(batch[:0], job)
		case <-s.closing:
			return
		}
	gather: // take whatever else is waiting, without waiting for more
		for len(batch) < maxBatch {
			select {
			case job := <-s.writes:
				batch = append(batch, job)
			default:
				break gather
			}
		}
		s.commitBatch(batch)
		select { // nudge the checkpointer, unless a nudge is already waiting
		case s.checkpointDue <- struct{}{}:
		default:
		}
	}
}

// commitBatch runs batch in one transaction and answers each job.
func (s *store) commitBatch(batch []writeJob) {
	results := make([]error, len(batch))
	err := s.runBatch(batch, results)
	for i, job := range batch {
		if err != nil { // the transaction is lost, and every write in it
			results[i] = err
		}
		job.done <- results[i]
	}
}

// runBatch runs each job in its own savepoint and commits. It returns an
// error only if the transaction as a whole failed.
func (s *store) runBatch(batch []writeJob, results []error) error {
	// Not any request's context: one request that goes away must not roll
	// back the others (database/sql rolls a Tx back when its context ends).
	ctx := context.Background()
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &txn{tx: tx, pool: s.write}
	defer t.prepareMissed(ctx)
	for i, job := range batch {
		if err := job.ctx.Err(); err != nil {
			results[i] = err // its caller has gone: do not start it
			continue
		}
		if _, err := t.ExecContext(ctx, `SAVEPOINT job`); err != nil {
			tx.Rollback()
			return err
		}
		results[i] = runJob(t, job)
		if results[i] != nil {
			// Undo this job's changes only. If even that fails, SQLite has
			// given up the transaction (a full disk, an I/O error).
			if _, err := t.ExecContext(ctx, `ROLLBACK TO job`); err != nil {
				tx.Rollback()
				return err
			}
		}
		if _, err := t.ExecContext(ctx, `RELEASE job`); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.commits.Add(1)
	s.committed.Add(int64(len(batch)))
	return nil
}

// runJob calls the job's function. A panic in it becomes that job's error,
// with the stack: it must not take the writer, and every waiting request,
// down with it.
func runJob(t *txn, job writeJob) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in a write transaction: %v\n%s", p, debug.Stack())
		}
	}()
	return job.fn(t)
}

// ---- checkpoints ----
//
// In WAL mode a commit appends pages to notes.db-wal; a checkpoint copies
// them back into notes.db and waits for two fsyncs. By default SQLite runs
// it inside the commit that takes the log past 1000 pages, and every write
// queued behind that commit waits for the disk: under the refresh load the
// writer spent a sixth of its time there, with a core idle. So the writer
// never checkpoints (wal_autocheckpoint(0)); this goroutine does, on its own
// connection, beside the writer and the readers (PASSIVE: it copies what no
// reader still needs and waits for nobody). At most once every
// checkpointEvery, and only after commits.

const checkpointEvery = time.Second

// checkpoints runs until Close. A checkpoint that fails is retried at the
// next one; the log only grows meanwhile.
func (s *store) checkpoints() {
	defer s.background.Done()
	for {
		select {
		case <-s.checkpointDue:
		case <-s.closing:
			return
		}
		if _, err := s.checkpoint.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err == nil {
			s.checkpointed.Add(1)
		}
		select {
		case <-time.After(checkpointEvery):
		case <-s.closing:
			return
		}
	}
}

// pool is a *sql.DB whose queries are prepared statements, each SQL string
// prepared once and reused. Parsing SQL was the largest single cost of a
// request before; now SQLite parses each query once per connection
// (database/sql keeps a prepared copy on every connection that ran it). The
// queries are constant strings, so the cache stays small and never evicts.
type pool struct {
	*sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func newPool(db *sql.DB) *pool {
	return &pool{DB: db, stmts: map[string]*sql.Stmt{}}
}

// stmt returns the prepared statement for query, preparing it on first use.
func (p *pool) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := p.cached(query); st != nil {
		return st, nil
	}
	st, err := p.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.stmts[query]; ok { // another request prepared it meanwhile
		st.Close()
		return prev, nil
	}
	p.stmts[query] = st
	return st, nil
}

func (p *pool) cached(query string) *sql.Stmt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stmts[query]
}

// runToEnd is the context a query runs under: the request's, without its
// cancellation. Every query here is short (indexed, a page at most), and
// watching a cancelable context costs database/sql a goroutine per query:
// half as much again as a one-row lookup itself. So a query whose request
// has gone away still runs to its end, a few microseconds later.
func runToEnd(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// QueryRowContext runs query as a prepared statement. (If it cannot be
// prepared, the plain call reports the same error through the *sql.Row.)
func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = runToEnd(ctx)
	st, err := p.stmt(ctx, query)
	if err != nil {
		return p.DB.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = runToEnd(ctx)
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (p *pool) close() error {
	for _, st := range p.stmts {
		st.Close()
	}
	return p.DB.Close()
}

// txn is a write transaction that runs its queries as the write pool's
// prepared statements.
type txn struct {
	tx     *sql.Tx
	pool   *pool
	missed []string // queries not prepared yet
}

// stmt returns query's statement for this transaction. One not prepared yet
// cannot be prepared on the pool now: its only connection is this
// transaction's. So it is prepared within the transaction for this once, and
// for good after the transaction (prepareMissed).
func (t *txn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := t.pool.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st), nil
	}
	t.missed = append(t.missed, query)
	return t.tx.PrepareContext(ctx, query)
}

func (t *txn) prepareMissed(ctx context.Context) {
	for _, query := range t.missed {
		t.pool.stmt(ctx, query) // an error here only means it is prepared next time
	}
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = runToEnd(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = runToEnd(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		return t.tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = runToEnd(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// micros and fromMicros convert between time.Time and the stored integers.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// foldKey is the form usernames and emails are compared in: unique
// case-insensitively, in every script, not only ASCII.
func foldKey(s string) string { return strings.ToLower(s) }

// ---- users ----

const userColumns = `u.id, u.username, u.email, u.first_name, u.last_name, u.bio,
	coalesce(u.cover_photo, ''), u.is_active, u.date_joined, coalesce(u.last_login, 0)`

// scanUser reads userColumns, followed by any extra destinations.
func scanUser(row interface{ Scan(...any) error }, u *user, extra ...any) error {
	var joined, lastLogin int64
	dest := append([]any{&u.ID, &u.Username, &u.Email, &u.FirstName, &u.LastName, &u.Bio,
		&u.CoverPhoto, &u.IsActive, &joined, &lastLogin}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return errNotFound
		}
		return err
	}
	u.DateJoined = fromMicros(joined)
	if lastLogin != 0 {
		u.LastLogin = fromMicros(lastLogin)
	}
	return nil
}

// usernameTaken and emailTaken answer the uniqueness checks of validation,
// case-insensitively. The UNIQUE constraints stay the final word (createUser).
func (s *store) usernameTaken(ctx context.Context, username string, exceptUserID int64) (bool, error) {
	return s.exists(ctx, `SELECT EXISTS(SELECT 1 FROM users WHERE username_key = ? AND id != ?)`,
		foldKey(username), exceptUserID)
}

func (s *store) emailTaken(ctx context.Context, email string, exceptUserID int64) (bool, error) {
	return s.exists(ctx, `SELECT EXISTS(SELECT 1 FROM users WHERE email_key = ? AND id != ?)`,
		foldKey(email), exceptUserID)
}

func (s *store) exists(ctx context.Context, query string, args ...any) (bool, error) {
	var found bool
	err := s.read.QueryRowContext(ctx, query, args...).Scan(&found)
	return found, err
}

// newUser is what registration stores.
type newUser struct {
	Username     string
	Email        string
	PasswordHash string
	Bio          string
	CoverPhoto   *imageFile // nil for none
}

// createUser inserts a user. If another request took the username or the
// email first, it returns errUsernameTaken or errEmailTaken.
func (s *store) createUser(ctx context.Context, nu newUser, now time.Time) (user, error) {
	var u user
	err := s.withNewFile(coversFolder, nu.CoverPhoto, func(coverPhoto *string) error {
		return s.inWriteTx(ctx, func(tx *txn) error {
			res, err := tx.ExecContext(ctx, `INSERT INTO users
				(username, username_key, email, email_key, password, bio, cover_photo, date_joined)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				nu.Username, foldKey(nu.Username), nu.Email, foldKey(nu.Email), nu.PasswordHash, nu.Bio,
				coverPhoto, micros(now))
			if isUniqueViolation(err) {
				return whichTaken(ctx, tx, nu)
			}
			if err != nil {
				return err
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			return scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = ?`, id), &u)
		})
	})
	return u, err
}

// whichTaken names the UNIQUE constraint an insert of nu ran into.
func whichTaken(ctx context.Context, tx *txn, nu newUser) error {
	var byName bool
	err := tx.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM users WHERE username_key = ?)`,
		foldKey(nu.Username)).Scan(&byName)
	if err != nil {
		return err
	}
	if byName {
		return errUsernameTaken
	}
	return errEmailTaken
}

// credentials returns the user with exactly this username and their
// password hash, or errNotFound.
func (s *store) credentials(ctx context.Context, username string) (user, string, error) {
	var u user
	var hash string
	err := scanUser(s.read.QueryRowContext(ctx,
		`SELECT `+userColumns+`, u.password FROM users u WHERE u.username = ?`, username), &u, &hash)
	return u, hash, err
}

// ---- sessions and tokens ----

// createSession records a login: the new session and the user's last_login,
// in one transaction. verifiedHash is the password hash the login was
// checked against: if the password changed (or the user was deactivated or
// deleted) since, no session is made and it returns errNotFound, so a login
// racing a password change cannot outlive it.
func (s *store) createSession(ctx context.Context, sess session, verifiedHash string) error {
	return s.inWriteTx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO sessions
				(id, user_id, created, last_used, expires, user_agent, ip)
			SELECT ?, id, ?, ?, ?, ?, ? FROM users WHERE id = ? AND password = ? AND is_active`,
			sess.ID, micros(sess.Created), micros(sess.Created), micros(sess.Expires),
			sess.UserAgent, sess.IP, sess.UserID, verifiedHash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, errNotFound)
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET last_login = ? WHERE id = ?`,
			micros(sess.Created), sess.UserID)
		return err
	})
}

// liveSession is the SQL condition for a session that can still be used.
const liveSession = `s.revoked IS NULL AND s.expires > ?`

// userForAccess is the check every authenticated request makes, in one
// indexed lookup: the user (errNotFound if deleted) and whether the token's
// session is live and theirs.
func (s *store) userForAccess(ctx context.Context, userID int64, sessionID string, now time.Time) (user, bool, error) {
	var u user
	var live bool
	err := scanUser(s.read.QueryRowContext(ctx, `SELECT `+userColumns+`,
			EXISTS(SELECT 1 FROM sessions s WHERE s.id = ? AND s.user_id = u.id AND `+liveSession+`)
		FROM users u WHERE u.id = ?`, sessionID, micros(now), userID), &u, &live)
	return u, live, err
}

// tokenRevoked reports whether a signed token can no longer be used: its jti
// is blacklisted, or its session is revoked, over, someone else's or absent.
func (s *store) tokenRevoked(ctx context.Context, c claims, now time.Time) (bool, error) {
	return s.exists(ctx, `SELECT EXISTS(SELECT 1 FROM blacklist WHERE jti = ?)
		OR NOT EXISTS(SELECT 1 FROM sessions s WHERE s.id = ? AND s.user_id = ? AND `+liveSession+`)`,
		c.JTI, c.SessionID, c.UserID, micros(now))
}

// refreshOutcome is what became of a refresh request.
type refreshOutcome int

const (
	refreshRotated   refreshOutcome = iota // the token was blacklisted and a replacement minted
	refreshGrace                           // rotated moments ago: the same replacement again
	refreshRevoked                         // reuse, or the session was already over: it is revoked
	refreshNoAccount                       // the user is gone or inactive
)

// rotateRefresh is refresh-token rotation, in one write transaction so that
// of any number of concurrent calls with one token exactly one rotates.
//
// A token seen for the first time is blacklisted and replaced by the payload
// that mint returns (mint runs inside the transaction, so the new claims come
// from the user row as it is now). A token rotated no longer than grace ago
// gets the replacement it got then, so that two tabs refreshing at once end up
// with the same token. Any other reuse means the token was copied: the whole
// session is revoked, and with it every token it issued.
func (s *store) rotateRefresh(ctx context.Context, old claims, now time.Time, grace time.Duration,
	mint func(user, session) string) (refreshOutcome, user, session, string, error) {
	var (
		outcome refreshOutcome
		u       user
		sess    session
		payload string
	)
	err := s.inWriteTx(ctx, func(tx *txn) error {
		var sessionLive bool
		var expires int64
		err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+`,
				coalesce(s.id, ''), coalesce(s.expires, 0), coalesce(`+liveSession+`, 0)
			FROM users u LEFT JOIN sessions s ON s.id = ? AND s.user_id = u.id
			WHERE u.id = ?`, micros(now), old.SessionID, old.UserID), &u, &sess.ID, &expires, &sessionLive)
		if errors.Is(err, errNotFound) || err == nil && !u.IsActive {
			outcome = refreshNoAccount
			return nil
		}
		if err != nil {
			return err
		}
		if !sessionLive {
			outcome = refreshRevoked
			return nil
		}
		sess.UserID, sess.Expires = u.ID, fromMicros(expires)

		var replacement sql.NullString
		var blacklistedAt int64
		err = tx.QueryRowContext(ctx, `SELECT replacement, blacklisted_at FROM blacklist WHERE jti = ?`,
			old.JTI).Scan(&replacement, &blacklistedAt)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			outcome, payload = refreshRotated, mint(u, sess)
			return rotate(ctx, tx, old, sess.ID, payload, now)
		case err != nil:
			return err
		case replacement.Valid && now.Sub(fromMicros(blacklistedAt)) <= grace:
			outcome, payload = refreshGrace, replacement.String
			return nil
		default:
			outcome = refreshRevoked
			return revokeSession(ctx, tx, sess.ID, now)
		}
	})
	return outcome, u, sess, payload, err
}

// rotate blacklists the old token, remembering its replacement, and marks the
// session used.
func rotate(ctx context.Context, tx *txn, old claims, sessionID, replacement string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO blacklist (jti, session_id, expires, blacklisted_at, replacement)
		VALUES (?, ?, ?, ?, ?)`, old.JTI, sessionID, micros(time.Unix(old.Exp, 0)), micros(now), replacement)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE sessions SET last_used = ? WHERE id = ?`, micros(now), sessionID)
	return err
}

func revokeSession(ctx context.Context, tx *txn, sessionID string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked = ? WHERE id = ? AND revoked IS NULL`,
		micros(now), sessionID)
	return err
}

// logout handles POST /api/token/blacklist/: it revokes the token's session.
// It reports false if the token was already unusable (rotated out or its
// session over): the session is revoked all the same, and the caller answers
// "Token is blacklisted".
func (s *store) logout(ctx context.Context, old claims, now time.Time) (bool, error) {
	var ok bool
	err := s.inWriteTx(ctx, func(tx *txn) error {
		var live, rotated bool
		err := tx.QueryRowContext(ctx, `SELECT
				EXISTS(SELECT 1 FROM sessions s WHERE s.id = ? AND s.user_id = ? AND `+liveSession+`),
				EXISTS(SELECT 1 FROM blacklist WHERE jti = ?)`,
			old.SessionID, old.UserID, micros(now), old.JTI).Scan(&live, &rotated)
		if err != nil || !live {
			return err
		}
		if err := revokeSession(ctx, tx, old.SessionID, now); err != nil {
			return err
		}
		if rotated {
			return nil
		}
		ok = true
		_, err = tx.ExecContext(ctx, `INSERT INTO blacklist (jti, session_id, expires, blacklisted_at)
			VALUES (?, ?, ?, ?)`, old.JTI, old.SessionID, micros(time.Unix(old.Exp, 0)), micros(now))
		return err
	})
	return ok, err
}

// ---- account management ----

// profileChanges are the profile fields a user may change; nil leaves a
// field as it is.
type profileChanges struct {
	Username         *string
	Email            *string
	FirstName        *string
	LastName         *string
	Bio              *string
	CoverPhoto       *imageFile // a new photo
	RemoveCoverPhoto bool
}

// updateProfile applies changes to user id and returns the user as saved. If
// another user took the new username or email first, it returns
// errUsernameTaken or errEmailTaken and saves nothing.
func (s *store) updateProfile(ctx context.Context, id int64, c profileChanges) (user, error) {
	var u user
	var oldPhoto string
	err := s.withNewFile(coversFolder, c.CoverPhoto, func(newPhoto *string) error {
		return s.inWriteTx(ctx, func(tx *txn) error {
			err := tx.QueryRowContext(ctx, `SELECT coalesce(cover_photo, '') FROM users WHERE id = ?`, id).Scan(&oldPhoto)
			if err != nil {
				return err
			}
			photoChanges := newPhoto != nil || c.RemoveCoverPhoto
			_, err = tx.ExecContext(ctx, `UPDATE users SET
					username     = coalesce(?1, username),
					username_key = coalesce(?2, username_key),
					email        = coalesce(?3, email),
					email_key    = coalesce(?4, email_key),
					first_name   = coalesce(?5, first_name),
					last_name    = coalesce(?6, last_name),
					bio          = coalesce(?7, bio),
					cover_photo  = iif(?8, ?9, cover_photo)
				WHERE id = ?10`,
				c.Username, foldKeyPtr(c.Username), c.Email, foldKeyPtr(c.Email), c.FirstName, c.LastName, c.Bio,
				photoChanges, newPhoto, id)
			if isUniqueViolation(err) {
				if c.Username == nil {
					return errEmailTaken
				}
				return whichTaken(ctx, tx, newUser{Username: *c.Username})
			}
			if err != nil {
				return err
			}
			if !photoChanges {
				oldPhoto = "" // kept, not replaced
			}
			return scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = ?`, id), &u)
		})
	})
	if err == nil {
		s.removeMedia(oldPhoto) // only once the new state is committed
	}
	return u, err
}

func foldKeyPtr(s *string) *string {
	if s == nil {
		return nil
	}
	k := foldKey(*s)
	return &k
}

// passwordHash returns the stored hash of user id.
func (s *store) passwordHash(ctx context.Context, id int64) (string, error) {
	var hash string
	err := s.read.QueryRowContext(ctx, `SELECT password FROM users WHERE id = ?`, id).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errNotFound
	}
	return hash, err
}

// changePassword stores a new hash and revokes every session of the user but
// keep, in one transaction: no other device stays logged in with the old
// password.
func (s *store) changePassword(ctx context.Context, id int64, hash, keep string, now time.Time) error {
	return s.inWriteTx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET password = ? WHERE id = ?`, hash, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked = ?
			WHERE user_id = ? AND id != ? AND revoked IS NULL`, micros(now), id, keep)
		return err
	})
}

// deleteUser deletes user id; the foreign keys take their notes, sessions
// and blacklist rows with them, and their files go once that is committed.
func (s *store) deleteUser(ctx context.Context, id int64) error {
	var files []string
	err := s.inWriteTx(ctx, func(tx *txn) error {
		rows, err := tx.QueryContext(ctx, `SELECT cover_photo FROM users WHERE id = ?1 AND cover_photo IS NOT NULL
			UNION ALL SELECT cover_image FROM notes WHERE user_id = ?1 AND cover_image IS NOT NULL`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f string
			if err := rows.Scan(&f); err != nil {
				return err
			}
			files = append(files, f)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
		return err
	})
	if err == nil {
		s.removeMedia(files...)
	}
	return err
}

// liveSessions lists the sessions of user id that can still be used, the
// most recently used first.
func (s *store) liveSessions(ctx context.Context, id int64, now time.Time) ([]session, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT s.id, s.created, s.last_used, s.expires, s.user_agent, s.ip
		FROM sessions s WHERE s.user_id = ? AND `+liveSession+`
		ORDER BY s.last_used DESC, s.created DESC`, id, micros(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []session
	for rows.Next() {
		var sess session
		var created, lastUsed, expires int64
		if err := rows.Scan(&sess.ID, &created, &lastUsed, &expires, &sess.UserAgent, &sess.IP); err != nil {
			return nil, err
		}
		sess.UserID = id
		sess.Created, sess.LastUsed, sess.Expires = fromMicros(created), fromMicros(lastUsed), fromMicros(expires)
		list = append(list, sess)
	}
	return list, rows.Err()
}

// revokeUserSession revokes one live session of user id; errNotFound if
// there is no such session.
func (s *store) revokeUserSession(ctx context.Context, id int64, sessionID string, now time.Time) error {
	return s.inWriteTx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE sessions AS s SET revoked = ?
			WHERE s.id = ? AND s.user_id = ? AND `+liveSession, micros(now), sessionID, id, micros(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, errNotFound)
		}
		return nil
	})
}

// revokeAllSessions logs user id out everywhere.
func (s *store) revokeAllSessions(ctx context.Context, id int64, now time.Time) error {
	return s.inWriteTx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked = ? WHERE user_id = ? AND revoked IS NULL`,
			micros(now), id)
		return err
	})
}

// flushExpired deletes what can no longer matter: sessions that are over
// (revoked or past their end; a token naming a missing session is refused
// all the same) and blacklist rows of tokens that have expired anyway. It
// returns how many blacklist rows and sessions went.
func (s *store) flushExpired(ctx context.Context, now time.Time) (tokens, sessions int64, err error) {
	err = s.inWriteTx(ctx, func(tx *txn) error {
		var before, after int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM blacklist`).Scan(&before); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE revoked IS NOT NULL OR expires <= ?`, micros(now))
		if err != nil {
			return err
		}
		if sessions, err = res.RowsAffected(); err != nil {
			return err
		}
		// The sessions took their own blacklist rows with them (ON DELETE CASCADE).
		if _, err := tx.ExecContext(ctx, `DELETE FROM blacklist WHERE expires <= ?`, micros(now)); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM blacklist`).Scan(&after); err != nil {
			return err
		}
		tokens = before - after
		return nil
	})
	return tokens, sessions, err
}

// ---- notes ----

// note is a row of notes.
type note struct {
	ID         int64
	UserID     int64
	Title      string
	Body       string
	CoverImage string // "" when there is none
	IsPublic   bool
	Created    time.Time
	Updated    time.Time
}

// noteFields are the fields of a create or a partial update; nil leaves a
// field as it is (or, on create, at its default).
type noteFields struct {
	Title       *string
	Body        *string
	IsPublic    *bool
	Image       *imageFile // a new cover image
	RemoveImage bool
}

// noteColumns are unqualified so that INSERT ... RETURNING can use them too.
const noteColumns = `id, user_id, title, body, coalesce(cover_image, ''), is_public, created, updated`

func scanNote(row interface{ Scan(...any) error }, n *note) error {
	var created, updated int64
	err := row.Scan(&n.ID, &n.UserID, &n.Title, &n.Body, &n.CoverImage, &n.IsPublic, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return errNotFound
	}
	n.Created, n.Updated = fromMicros(created), fromMicros(updated)
	return err
}

// searchKey is what ?q= looks in: title and body, lower-cased, apart.
func searchKey(title, body string) string {
	return foldKey(title) + "\x00" + foldKey(body)
}

func deref[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

// createNote stores a new note of user userID. errNotFound means the user was
// deleted meanwhile.
//
// The note is built here from what was inserted, not read back with
// RETURNING: SQLite collects RETURNING rows in a temporary table, which cost
// as much again as the insert, inside the one writer.
func (s *store) createNote(ctx context.Context, userID int64, f noteFields, now time.Time) (note, error) {
	n := note{UserID: userID, Title: deref(f.Title), Body: deref(f.Body), IsPublic: deref(f.IsPublic),
		Created: fromMicros(micros(now)), Updated: fromMicros(micros(now))}
	err := s.withNewFile(imagesFolder, f.Image, func(image *string) error {
		n.CoverImage = deref(image)
		return s.inWriteTx(ctx, func(tx *txn) error {
			res, err := tx.ExecContext(ctx, `INSERT INTO notes
					(user_id, title, body, search, cover_image, is_public, created, updated)
				SELECT id, ?, ?, ?, ?, ?, ?, ? FROM users WHERE id = ?`,
				n.Title, n.Body, searchKey(n.Title, n.Body), image, n.IsPublic, micros(now), micros(now), userID)
			if err != nil {
				return err
			}
			if inserted, err := res.RowsAffected(); err != nil || inserted == 0 {
				return cmp.Or(err, errNotFound)
			}
			n.ID, err = res.LastInsertId()
			return err
		})
	})
	return n, err
}

// noteFor returns note id if viewer may read it: their own, or public.
// Someone else's private note is errNotFound, as if it did not exist.
func (s *store) noteFor(ctx context.Context, id, viewer int64) (note, error) {
	var n note
	err := scanNote(s.read.QueryRowContext(ctx, `SELECT `+noteColumns+` FROM notes n
		WHERE n.id = ? AND (n.user_id = ? OR n.is_public)`, id, viewer), &n)
	return n, err
}

// updateNote applies f to note id of owner and returns it as saved;
// errNotFound if it is gone or not theirs (checked again here, inside the
// write transaction). A replaced or removed image is deleted after commit.
func (s *store) updateNote(ctx context.Context, id, owner int64, f noteFields, now time.Time) (note, error) {
	var n note
	var oldImage string
	err := s.withNewFile(imagesFolder, f.Image, func(newImage *string) error {
		return s.inWriteTx(ctx, func(tx *txn) error {
			err := scanNote(tx.QueryRowContext(ctx, `SELECT `+noteColumns+` FROM notes n
				WHERE n.id = ? AND n.user_id = ?`, id, owner), &n)
			if err != nil {
				return err
			}
			if f.Title != nil { // "" is a title too
				n.Title = *f.Title
			}
			if f.Body != nil {
				n.Body = *f.Body
			}
			if f.IsPublic != nil {
				n.IsPublic = *f.IsPublic
			}
			if newImage != nil || f.RemoveImage {
				oldImage, n.CoverImage = n.CoverImage, deref(newImage)
			}
			n.Updated = now
			_, err = tx.ExecContext(ctx, `UPDATE notes SET title = ?, body = ?, search = ?, is_public = ?,
				cover_image = nullif(?, ''), updated = ? WHERE id = ?`,
				n.Title, n.Body, searchKey(n.Title, n.Body), n.IsPublic, n.CoverImage, micros(now), id)
			return err
		})
	})
	if err != nil {
		return note{}, err
	}
	s.removeMedia(oldImage)
	return n, nil
}

// deleteNote deletes note id of owner, and then its image.
func (s *store) deleteNote(ctx context.Context, id, owner int64) error {
	var image sql.NullString
	err := s.inWriteTx(ctx, func(tx *txn) error {
		err := tx.QueryRowContext(ctx, `DELETE FROM notes WHERE id = ? AND user_id = ? RETURNING cover_image`,
			id, owner).Scan(&image)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotFound
		}
		return err
	})
	if err == nil {
		s.removeMedia(image.String)
	}
	return err
}

// noteQuery selects a page of the notes viewer may see.
type noteQuery struct {
	viewer int64
	owner  int64  // only this user's notes; 0 for everyone's
	search string // a substring of title or body, any case; "" for all
	limit  int    // -1 for no limit
	offset int
}

// listNotes returns the notes of q, newest updated first.
//
// Everyone's visible notes are two index walks, each already newest first:
// the caller's own notes (notes_user_updated) and the others' public notes
// (notes_public_updated). Under one ORDER BY that both indexes give, SQLite
// merges the two walks row by row and stops when the page is full, with no
// sort and no temporary table (EXPLAIN QUERY PLAN: MERGE (UNION ALL)). One
// walk over all notes would step over every private note of everyone else.
// The query is built from fixed pieces; every value goes in as a named
// argument.
func (s *store) listNotes(ctx context.Context, q noteQuery) ([]note, error) {
	if strings.ContainsRune(q.search, 0) {
		return nil, nil // NUL only separates title from body: it matches no text
	}
	rows, err := s.read.QueryContext(ctx, listQuery(q), sql.Named("viewer", q.viewer), sql.Named("owner", q.owner),
		sql.Named("search", foldKey(q.search)), sql.Named("limit", q.limit),
		sql.Named("offset", q.offset))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var notes []note
	for rows.Next() {
		var n note
		if err := scanNote(rows, &n); err != nil {
			return nil, err
		}
		notes = append(notes, n)
	}
	return notes, rows.Err()
}

// listQuery is the SQL of listNotes for q.
func listQuery(q noteQuery) string {
	walk := func(where string) string {
		w := `SELECT ` + noteColumns + ` FROM notes WHERE ` + where
		if q.search != "" {
			// instr, not LIKE: % and _ in the search are ordinary characters.
			w += ` AND instr(search, :search) > 0`
		}
		return w
	}
	query := walk(`user_id = :viewer`) + ` UNION ALL ` + walk(`is_public = 1 AND user_id <> :viewer`)
	if q.owner != 0 {
		query = walk(`user_id = :owner AND (user_id = :viewer OR is_public = 1)`)
	}
	return query + ` ORDER BY updated DESC, id DESC LIMIT :limit OFFSET :offset`
}

// userExists reports whether user id exists (GET /api/users/{id}/notes/).
func (s *store) userExists(ctx context.Context, id int64) (bool, error) {
	return s.exists(ctx, `SELECT EXISTS(SELECT 1 FROM users WHERE id = ?)`, id)
}

// ---- media files ----

// The folders of DATA_DIR/media.
const (
	coversFolder = "covers" // profile cover photos
	imagesFolder = "images" // note cover images
)

// imageFile is an uploaded image that the handlers have checked: its bytes
// and the file extension of its detected type.
type imageFile struct {
	data []byte
	ext  string
}

// openMedia creates DATA_DIR/media and its folders and opens it as an
// os.Root: every later file operation is confined to it (no "..", no
// symlink out).
func openMedia(dataDir string) (*os.Root, error) {
	dir := filepath.Join(dataDir, "media")
	for _, folder := range []string{coversFolder, imagesFolder} {
		if err := os.MkdirAll(filepath.Join(dir, folder), 0o700); err != nil {
			return nil, err
		}
	}
	return os.OpenRoot(dir)
}

// withNewFile saves img (if any) under folder, runs fn with its path (nil
// for no image), and deletes the file again if fn fails: a file exists only
// for a row that was committed. (A crash between the two can leave an
// unreferenced file, never a referenced file that is missing or partial.)
func (s *store) withNewFile(folder string, img *imageFile, fn func(path *string) error) error {
	if img == nil {
		return fn(nil)
	}
	path, err := s.saveMedia(folder, img)
	if err != nil {
		return err
	}
	if err := fn(&path); err != nil {
		s.removeMedia(path)
		return err
	}
	return nil
}

// saveMedia writes img under folder with a random name (128 bits) and
// returns "folder/name.ext". It writes a temporary file, syncs it and renames
// it into place, so a crash never leaves half a file under a served name.
func (s *store) saveMedia(folder string, img *imageFile) (string, error) {
	final := path.Join(folder, randomID()+"."+img.ext)
	tmp := path.Join(folder, ".tmp-"+randomID())
	f, err := s.media.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.Write(img.data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.media.Rename(tmp, final)
	}
	if err != nil {
		s.media.Remove(tmp)
		return "", err
	}
	return final, nil
}

// removeMedia deletes stored files. A file that cannot be deleted is left
// behind: an unreferenced file harms nothing.
func (s *store) removeMedia(paths ...string) {
	for _, p := range paths {
		if p != "" {
			s.media.Remove(p)
		}
	}
}

// openMediaFile opens a stored file for reading. Anything the os.Root will
// not open (missing, or a symlink out of the folder) is errNotFound.
func (s *store) openMediaFile(p string) (*os.File, error) {
	f, err := s.media.Open(p)
	if err != nil {
		return nil, errNotFound
	}
	return f, nil
}
