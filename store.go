package main

// store.go: everything jwtnotes keeps, in one SQLite file.
//
// Read it top to bottom: opening the database, then users, then sessions;
// then writes, and what a committed write changes in memory (write,
// committed), and refresh-token rotation (the heart of the project:
// rotateRefresh). Account management is accounts.go's, notes notes.go's.
//
// It knows SQL, not HTTP. Methods take ctx first, use ? placeholders and
// return domain structs or named errors. Reads go through s.db.queryRow and
// s.db.query; every write is a function run by s.write in a write
// transaction. How those run (one writer, group commit, prepared
// statements) is sqlite.go's business; bringing the schema up to date,
// schema.go's; an account's quota, quota.go's; the rows of mailed links,
// links.go's; the uploaded files, media.go's; the search index, search.go's.

import (
	"cmp"
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors the store returns; handlers turn them into the contract's answers.
var (
	errNotFound = errors.New("not found")
	// errUserGone: the user a request acts for was deleted while it ran.
	errUserGone      = errors.New("user deleted meanwhile")
	errUsernameTaken = errors.New("username taken")
	errEmailTaken    = errors.New("email taken")
	// errPasswordChanged: the password changed while a request that had
	// checked it ran (a reset, or a change on another device).
	errPasswordChanged = errors.New("password changed meanwhile")
)

// user is a row of users, without the password hash: that stays in the
// store and in login.
type user struct {
	ID            int64
	Username      string
	Email         string
	FirstName     string
	LastName      string
	Bio           string
	CoverPhoto    string // "" when there is none
	IsActive      bool
	EmailVerified bool // a link mailed to Email was opened
	DateJoined    time.Time
	LastLogin     time.Time // zero until the first login
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
	db     *sqliteDB
	media  *os.Root     // DATA_DIR/media: uploaded images; nothing outside it can be reached
	search *searchIndex // keeps the trigram index of ?q= (search.go)
	access *accessCache // userForAccess's recent answers (accesscache.go)

	// The counts of committed writes that answers kept in memory depend on
	// (committed moves them): of accounts, for access; of notes, by who can
	// see them, for the page cache (pagecache.go).
	accounts atomic.Uint64
	lists    listVersions
	// What committed writes leave to goroutines of their own: the count of
	// notes changed for the search indexer (search.go), the files no row
	// names any more for the media sweeper (media.go).
	notesChanged workCount
	unnamed      fileQueue

	mediaLock *os.File      // media/.backup.lock (media.go)
	closing   chan struct{} // closed by Close: the sweeper stops
}

// openStore opens (creating if needed) the database dataDir/notes.db, brings
// its schema up to date, and opens the media folder dataDir/media.
func openStore(ctx context.Context, dataDir string, settings sqliteSettings) (*store, error) {
	media, err := openMedia(dataDir)
	if err != nil {
		return nil, err
	}
	path := cmp.Or(settings.path, filepath.Join(dataDir, "notes.db"))
	step := migrate
	if settings.replica {
		step = needSchema // the primary migrates; a replica waits (replica.go)
	}
	db, err := openSQLite(ctx, path, settings, step)
	if err != nil {
		media.Close()
		return nil, fmt.Errorf("open the database %s: %w", path, err)
	}
	lock, err := media.OpenFile(backupLockName, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		db.close()
		media.Close()
		return nil, err
	}
	st := &store{db: db, media: media, access: newAccessCache(), mediaLock: lock, closing: make(chan struct{})}
	st.notesChanged.wake, st.unnamed.wake = make(chan struct{}, 1), make(chan struct{}, 1)
	st.unnamed.idle.L = &st.unnamed.mu
	if settings.replica {
		st.search = &searchIndex{db: db, changes: &st.notesChanged, stop: make(chan struct{})} // reads the primary's index
	} else {
		st.search = startSearchIndex(db, &st.notesChanged)
	}
	go st.sweep()
	return st, nil
}

// Close stops the database's goroutines and closes everything. Writes that
// arrive later get errStoreClosed.
func (s *store) Close() error {
	close(s.closing)
	s.search.close()
	return errors.Join(s.db.close(), s.media.Close())
}

// ping checks that the database answers.
func (s *store) ping(ctx context.Context) error {
	return s.db.ping(ctx)
}

// micros and fromMicros convert between time.Time and the stored integers.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// foldKey is the form usernames and emails are compared in: unique
// case-insensitively, in every script, not only ASCII.
func foldKey(s string) string { return strings.ToLower(s) }

// ---- users ----

const userColumns = `u.id, u.username, u.email, u.first_name, u.last_name, u.bio,
	coalesce(u.cover_photo, ''), u.is_active, u.email_verified, u.date_joined, coalesce(u.last_login, 0)`

// scanUser reads userColumns, followed by any extra destinations.
func scanUser(row interface{ Scan(...any) error }, u *user, extra ...any) error {
	var joined, lastLogin int64
	dest := append([]any{&u.ID, &u.Username, &u.Email, &u.FirstName, &u.LastName, &u.Bio,
		&u.CoverPhoto, &u.IsActive, &u.EmailVerified, &joined, &lastLogin}, extra...)
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
	err := s.db.queryRow(ctx, query, args...).Scan(&found)
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

// createUser inserts a user, and the first line of their security log. If
// another request took the username or the email first, it returns
// errUsernameTaken or errEmailTaken.
func (s *store) createUser(ctx context.Context, nu newUser, now time.Time, from origin) (user, error) {
	var u user
	err := s.withNewFile(coversFolder, nu.CoverPhoto, func(coverPhoto *string) error {
		return s.write(ctx, func(tx *txn, ch *changed) error { // a new user is in no answer kept
			res, err := tx.ExecContext(ctx, `INSERT INTO users
				(username, username_key, email, email_key, password, bio, cover_photo, date_joined)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				nu.Username, foldKey(nu.Username), nu.Email, foldKey(nu.Email), nu.PasswordHash, nu.Bio,
				coverPhoto, micros(now))
			if isUniqueViolation(err) {
				return whichTaken(ctx, tx, nu.Username, 0)
			}
			if err != nil {
				return err
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			ch.log(event{userID: id, kind: evRegistered, at: now, from: from})
			return scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = ?`, id), &u)
		})
	})
	return u, err
}

// whichTaken names the UNIQUE constraint that a write of username (by user
// exceptUserID, 0 for a new user) ran into: the username if another user
// has it, else the email.
func whichTaken(ctx context.Context, tx *txn, username string, exceptUserID int64) error {
	var byName bool
	err := tx.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM users WHERE username_key = ? AND id != ?)`,
		foldKey(username), exceptUserID).Scan(&byName)
	if err != nil {
		return err
	}
	if byName {
		return errUsernameTaken
	}
	return errEmailTaken
}

// credentials returns the user with exactly this username and their
// password hash, or errNotFound. The lookup goes by the unique index on
// username_key, so it costs the same for every name, known or not, however
// many users there are; the exact spelling is then compared as Django's
// login does.
func (s *store) credentials(ctx context.Context, username string) (user, string, error) {
	var u user
	var hash string
	err := scanUser(s.db.queryRow(ctx, `SELECT `+userColumns+`, u.password FROM users u
		WHERE u.username_key = ? AND u.username = ?`, foldKey(username), username), &u, &hash)
	return u, hash, err
}

// ---- sessions and tokens ----

// createSession records a password login: the new session, the user's
// last_login and the line of their log, in one transaction (insertSession).
// verifiedHash is the password hash the login was checked against: if the
// password changed (or the user was deactivated or deleted) since, no
// session is made and it returns errNotFound, so a login racing a password
// change cannot outlive it.
func (s *store) createSession(ctx context.Context, sess session, verifiedHash string) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		return insertSession(ctx, tx, ch, sess, verifiedHash, "password")
	})
}

// insertSession is a login's writes, in tx: the session (if the user's hash
// is still verifiedHash), last_login, and a line of the log saying which
// factors it took.
func insertSession(ctx context.Context, tx *txn, ch *changed, sess session, verifiedHash, factors string) error {
	ch.account = true // last_login
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
	ch.log(event{userID: sess.UserID, kind: evLogin, at: sess.Created, session: sess.ID,
		from: origin{ip: sess.IP, userAgent: sess.UserAgent}, detail: factors})
	_, err = tx.ExecContext(ctx, `UPDATE users SET last_login = ? WHERE id = ?`,
		micros(sess.Created), sess.UserID)
	return err
}

// liveSession is the SQL condition for a session that can still be used.
const liveSession = `s.revoked IS NULL AND s.expires > ?`

// userForAccess is the check every authenticated request makes, in one
// indexed lookup: the user (errNotFound if deleted) and whether the token's
// session is live and theirs. Recent answers are kept in s.access, each used
// only while no account write has committed since it was read.
func (s *store) userForAccess(ctx context.Context, userID int64, sessionID string, now time.Time) (user, bool, error) {
	version := s.accounts.Load() // before the database is asked
	if u, ok := s.access.lookup(userID, sessionID, version, now); ok {
		return u, true, nil
	}
	var u user
	var ends sql.NullInt64 // the session's end, if it is theirs and not revoked
	err := scanUser(s.db.queryRow(ctx, `SELECT `+userColumns+`,
			(SELECT s.expires FROM sessions s WHERE s.id = ? AND s.user_id = u.id AND s.revoked IS NULL)
		FROM users u WHERE u.id = ?`, sessionID, userID), &u, &ends)
	live := err == nil && ends.Valid && ends.Int64 > micros(now)
	if live {
		s.access.keep(sessionID, u, fromMicros(ends.Int64), version, now)
	}
	return u, live, err
}

// ---- writes, and what they change in memory ----

// changed is what a write changed that memory holds answers of: the
// caches (accesscache.go, pagecache.go), the search index (search.go) and
// the media folder (media.go). Each write function says it as it writes;
// committed tells them all, once the write is committed. It also carries
// the lines of the security logs the write adds (securitylog.go), which
// write records in the same transaction.
type changed struct {
	account bool        // a user's row, or a session revoked: the user and session answers
	notes   []noteWrite // notes written or deleted: the pages that could hold them, the index
	files   []string    // media files that no row names any more, to delete
	events  []event     // lines of security logs, recorded before the commit
}

// noteWrite is a note written or deleted: its owner, and whether it is or
// was public (then every viewer's pages could hold it). listed, if not nil,
// receives the owner's list version that counts the write (pagecache.go).
type noteWrite struct {
	owner  int64
	public bool
	listed *listVersion
}

// listVersion is what a page of viewer's depends on: the count of writes
// of public notes, and of private notes of viewer's.
type listVersion struct{ public, private uint64 }

// listVersions counts note writes, as the store reports them. Private
// writes are counted in slots by owner: owners that share a slot forget
// each other's pages too, which costs a read and is never wrong.
type listVersions struct {
	public  atomic.Uint64
	private [1024]atomic.Uint64
}

// version is viewer's, taken before a page is read.
func (v *listVersions) version(viewer int64) listVersion {
	return listVersion{v.public.Load(), v.private[uint64(viewer)%uint64(len(v.private))].Load()}
}

// changed records a committed write of a note of owner's that is or was
// public (public) or else private. It returns owner's version that counts
// it: of a private write, the count before it was one less, all else equal.
func (v *listVersions) changed(owner int64, public bool) listVersion {
	if public {
		return listVersion{v.public.Add(1), 0}
	}
	private := v.private[uint64(owner)%uint64(len(v.private))].Add(1)
	return listVersion{v.public.Load(), private}
}

// write runs fn in a write transaction (sqlite.go), records the security
// log lines fn adds in it, and, once it has committed, tells memory what
// fn says it changed. Every write of the store goes through it.
func (s *store) write(ctx context.Context, fn func(tx *txn, ch *changed) error) error {
	var ch changed
	err := s.db.inWriteTx(ctx, func(tx *txn) error {
		ch = changed{}
		if err := fn(tx, &ch); err != nil {
			return err
		}
		return recordEvents(ctx, tx, ch.events)
	})
	if err == nil {
		s.committed(ch)
	}
	return err
}

// committed is the one place a committed write reaches memory, before its
// request is answered. It moves the counts that kept answers depend on, so
// that none read before the commit is used after it; it tells the search
// index how many notes changed, and hands the files no row names any more
// to be deleted.
func (s *store) committed(ch changed) {
	if ch.account {
		s.accounts.Add(1)
	}
	for _, n := range ch.notes {
		if v := s.lists.changed(n.owner, n.public); n.listed != nil {
			*n.listed = v
		}
	}
	s.notesChanged.add(int64(len(ch.notes)))
	s.unnamed.add(ch.files...)
}

// replicated is committed's rule on a LiteFS replica (replica.go), where
// the database changes by writes made on the primary: nothing says what
// they changed, so every kept answer is forgotten.
func (s *store) replicated() {
	s.accounts.Add(1)
	s.lists.public.Add(1) // every viewer's pages depend on it
}

// workCount is a count of work left to a goroutine: add counts and wakes it.
type workCount struct {
	n    atomic.Int64
	wake chan struct{} // buffered: one wake is enough
}

func (w *workCount) add(n int64) {
	if n > 0 {
		w.n.Add(n)
		wakeUp(w.wake)
	}
}

// fileQueue is files left to a goroutine: add queues them and wakes it,
// take hands them over, done says they are dealt with.
type fileQueue struct {
	mu      sync.Mutex
	idle    sync.Cond // on mu: broadcast when pending falls to 0
	paths   []string
	pending int // added and not done yet
	wake    chan struct{}
}

func (q *fileQueue) add(paths ...string) {
	q.mu.Lock()
	for _, p := range paths {
		if p != "" {
			q.paths = append(q.paths, p)
			q.pending++
		}
	}
	queued := len(q.paths) > 0
	q.mu.Unlock()
	if queued {
		wakeUp(q.wake)
	}
}

func (q *fileQueue) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	paths := q.paths
	q.paths = nil
	return paths
}

func (q *fileQueue) done(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending -= n; q.pending == 0 {
		q.idle.Broadcast()
	}
}

// wakeUp wakes the goroutine that waits on c, unless a wake-up waits
// already.
func wakeUp(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// tokenRevoked reports whether a signed token can no longer be used: its jti
// is blacklisted, or its session is revoked, over, someone else's or absent.
func (s *store) tokenRevoked(ctx context.Context, c claims, now time.Time) (bool, error) {
	return s.exists(ctx, `SELECT EXISTS(SELECT 1 FROM blacklist WHERE jti = ?)
		OR NOT EXISTS(SELECT 1 FROM sessions s WHERE s.id = ? AND s.user_id = ? AND `+liveSession+`)`,
		c.JTI, c.SessionID, c.UserID, micros(now))
}

// replacement names the refresh token that replaces a rotated one, as its
// blacklist row keeps it: its jti, the kid of the key that signs it, and
// the time of the rotation, its iat. Its other claims are the user's and
// the session's, so a grace answer is the very token the first answer gave,
// signed again.
type replacement struct {
	jti, kid string
	at       time.Time
}

// rotation is what became of a refresh request.
type rotation struct {
	outcome refreshOutcome
	reused  bool        // refreshRevoked by this reuse (not over before): the owner is told
	user    user        // the token's user as they are now (rotated and grace)
	session session     // the token's session (rotated and grace)
	next    replacement // the new token (rotated), or the one answered moments ago (grace)
}

type refreshOutcome int

const (
	refreshRotated   refreshOutcome = iota // the token was blacklisted, next names its replacement
	refreshGrace                           // rotated moments ago: next is the same replacement again
	refreshRevoked                         // reuse, or the session was already over: it is revoked
	refreshNoAccount                       // the user is gone or inactive
)

// rotateRefresh is refresh-token rotation, in one write transaction so that
// of any number of concurrent calls with one token exactly one rotates.
//
// A token seen for the first time is blacklisted, its row naming next as its
// replacement. A token rotated no longer than grace ago gets the
// replacement its row names, so that two tabs refreshing at once end up
// with the same token. Any other reuse means the token was copied: the
// whole session is revoked, and with it every token it issued, and the
// user's log says so, with where the reused token came from.
func (s *store) rotateRefresh(ctx context.Context, old claims, next replacement, grace time.Duration, from origin) (rotation, error) {
	var rot rotation
	next.at = fromMicros(micros(next.at)) // as the row keeps it, so a grace answer is the same token
	err := s.write(ctx, func(tx *txn, ch *changed) error {
		rot = rotation{}
		// One statement reads all a rotation decides on: the user, the
		// session's end if it is theirs and not revoked, and the token's
		// blacklist row if it has one (blacklisted_at is never NULL in a
		// row). Scalar subqueries, not a LEFT JOIN: SQLite recompiles a
		// LEFT JOIN of this shape whenever the user id bound is 1.
		var ends, rotatedAt sql.NullInt64
		var nextJTI, nextKid sql.NullString
		err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+`,
				(SELECT s.expires FROM sessions s WHERE s.id = :sid AND s.user_id = u.id AND s.revoked IS NULL),
				(SELECT b.blacklisted_at FROM blacklist b WHERE b.jti = :jti),
				(SELECT b.next_jti FROM blacklist b WHERE b.jti = :jti),
				(SELECT b.next_kid FROM blacklist b WHERE b.jti = :jti)
			FROM users u WHERE u.id = :uid`,
			sql.Named("sid", old.SessionID), sql.Named("jti", old.JTI), sql.Named("uid", old.UserID)),
			&rot.user, &ends, &rotatedAt, &nextJTI, &nextKid)
		switch {
		case errors.Is(err, errNotFound) || err == nil && !rot.user.IsActive:
			rot.outcome = refreshNoAccount
			return nil
		case err != nil:
			return err
		case !ends.Valid || ends.Int64 <= micros(next.at):
			rot.outcome = refreshRevoked // over already: nothing to revoke
			return nil
		}
		rot.session = session{ID: old.SessionID, UserID: rot.user.ID, Expires: fromMicros(ends.Int64)}
		switch {
		case !rotatedAt.Valid:
			rot.outcome, rot.next = refreshRotated, next
			_, err := tx.ExecContext(ctx, `INSERT INTO blacklist (jti, expires, blacklisted_at, next_jti, next_kid)
				VALUES (?, ?, ?, ?, ?)`, old.JTI, micros(time.Unix(old.Exp, 0)), micros(next.at), next.jti, next.kid)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE sessions SET last_used = ? WHERE id = ?`, micros(next.at), old.SessionID)
			return err
		case nextJTI.Valid && next.at.Sub(fromMicros(rotatedAt.Int64)) <= grace:
			rot.outcome = refreshGrace
			rot.next = replacement{jti: nextJTI.String, kid: nextKid.String, at: fromMicros(rotatedAt.Int64)}
			return nil
		default:
			rot.outcome, rot.reused = refreshRevoked, true
			ch.account = true
			ch.log(event{userID: rot.user.ID, kind: evTokenReuse, at: next.at, from: from, session: old.SessionID,
				detail: "a refresh token of this session was used again after it was rotated: the session is revoked"})
			return revokeSession(ctx, tx, old.SessionID, next.at)
		}
	})
	return rot, err
}

func revokeSession(ctx context.Context, tx *txn, sessionID string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked = ? WHERE id = ? AND revoked IS NULL`,
		micros(now), sessionID)
	return err
}

// logout revokes the session of a refresh token. It reports false if the token was already unusable (rotated out or its
// session over): the session is revoked all the same, and the caller answers
// "Token is blacklisted".
func (s *store) logout(ctx context.Context, old claims, now time.Time) (bool, error) {
	var ok bool
	err := s.write(ctx, func(tx *txn, ch *changed) error {
		ch.account = true
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
		_, err = tx.ExecContext(ctx, `INSERT INTO blacklist (jti, expires, blacklisted_at)
			VALUES (?, ?, ?)`, old.JTI, micros(time.Unix(old.Exp, 0)), micros(now))
		return err
	})
	return ok, err
}

// userExists reports whether user id exists.
func (s *store) userExists(ctx context.Context, id int64) (bool, error) {
	return s.exists(ctx, `SELECT EXISTS(SELECT 1 FROM users WHERE id = ?)`, id)
}
