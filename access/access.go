// Package access holds the small shared vocabulary of who may do what:
// session kinds, roles, actions and the one permission matrix that the REST
// API and signalling both enforce. It imports nothing of Chamber's, so every
// floor of the house can use it.
package access

import (
	"slices"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/fault"
)

// Kind is the kind of a session.
type Kind string

// Session kinds.
const (
	Hearing      Kind = "hearing"
	Notarisation Kind = "notarisation"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == Hearing || k == Notarisation }

// Role is what someone is in a session — or, for staff, what they are.
type Role string

// Participant roles. Hearings and notarial acts have their own sets;
// witness, interpreter and observer occur in both.
const (
	Judge          Role = "judge"
	Clerk          Role = "clerk"
	Party          Role = "party"
	Counsel        Role = "counsel"
	Witness        Role = "witness"
	Interpreter    Role = "interpreter"
	Observer       Role = "observer"
	Notary         Role = "notary"
	EmbassyOfficer Role = "embassy_officer"
	Principal      Role = "principal"
)

// Admin is a staff-only role: it acts in every session but is never a
// participant in one.
const Admin Role = "admin"

// StaffRoles are the roles a staff member can hold.
var StaffRoles = []Role{Judge, Clerk, Notary, EmbassyOfficer, Admin}

var kindRoles = map[Kind][]Role{
	Hearing:      {Judge, Clerk, Party, Counsel, Witness, Interpreter, Observer},
	Notarisation: {Notary, EmbassyOfficer, Principal, Witness, Interpreter, Observer},
}

// Roles returns the participant roles of a session kind.
func Roles(k Kind) []Role { return slices.Clone(kindRoles[k]) }

// InKind reports whether r is a participant role of kind k.
func (r Role) InKind(k Kind) bool { return slices.Contains(kindRoles[k], r) }

// IsStaff reports whether r is a role a staff member can hold.
func (r Role) IsStaff() bool { return slices.Contains(StaffRoles, r) }

// Presiding returns the role that presides over sessions of kind k.
func Presiding(k Kind) Role {
	if k == Notarisation {
		return Notary
	}
	return Judge
}

// Presides reports whether r presides (judge or notary).
func (r Role) Presides() bool { return r == Judge || r == Notary }

// EntersDirectly reports whether r skips the waiting room: the presiding
// role and clerks.
func (r Role) EntersDirectly() bool { return r.Presides() || r == Clerk }

// Action is something a caller may or may not do in a session.
type Action string

// Actions of the permission matrix. docs/roles.md explains each one.
const (
	CreateSession  Action = "create_session"
	ListSessions   Action = "list_sessions"
	ViewSession    Action = "view_session"
	Reschedule     Action = "reschedule"
	Invite         Action = "invite"
	Revoke         Action = "revoke"
	AssignStaff    Action = "assign_staff"
	PublicLink     Action = "public_link"
	Admit          Action = "admit"
	Move           Action = "move"
	Mute           Action = "mute"
	Remove         Action = "remove"
	Consult        Action = "consult"
	LinkInterp     Action = "link_interpreter"
	Record         Action = "record"
	SeeRecording   Action = "see_recording"
	Publish        Action = "publish"
	Chat           Action = "chat"
	Present        Action = "present"
	Upload         Action = "upload_document"
	SeeDocuments   Action = "see_documents"
	SeeAllDocs     Action = "see_all_documents"
	LabelExhibit   Action = "label_exhibit"
	Sign           Action = "sign"
	SeeJournal     Action = "see_journal"
	SeeParticipant Action = "see_participants"
	Close          Action = "close"
	IdentityCheck  Action = "identity_check"
	Seal           Action = "seal"
	LegalHold      Action = "legal_hold"
	Bundle         Action = "bundle"
	SeeRegister    Action = "see_register"
	VerifyJournal  Action = "verify_journal"
	ManageStaff    Action = "manage_staff"
)

// Actions lists every action in the order docs/roles.md shows them.
var Actions = []Action{
	CreateSession, ListSessions, ViewSession, Reschedule, Invite, Revoke, AssignStaff, PublicLink,
	Admit, Move, Mute, Remove, Consult, LinkInterp, Record, SeeRecording, Publish, Chat,
	Present, Upload, SeeDocuments, SeeAllDocs, LabelExhibit, Sign, SeeJournal,
	SeeParticipant, Close, IdentityCheck, Seal, LegalHold, Bundle, SeeRegister,
	VerifyJournal, ManageStaff,
}

// MatrixRoles lists the matrix's columns: participant roles, then admin.
var MatrixRoles = []Role{Judge, Clerk, Party, Counsel, Witness, Interpreter, Observer, Notary, EmbassyOfficer, Principal, Admin}

// moderate is what the presiding role and the clerk do to run a room.
var moderate = []Action{ViewSession, Invite, Revoke, AssignStaff, Admit, Move, Mute, Remove, Consult, LinkInterp, SeeParticipant}

// matrix is the permission matrix: role → allowed actions. Everything not
// listed is forbidden. Staff act in a session they created or were assigned
// to with the column of their staff role.
var matrix = map[Role][]Action{
	Judge: concat(moderate, []Action{
		CreateSession, ListSessions, Reschedule, PublicLink, Record, SeeRecording, Publish, Chat, Present, Upload,
		SeeDocuments, SeeAllDocs, LabelExhibit, Sign, SeeJournal, Close, Bundle,
	}),
	Clerk: concat(moderate, []Action{
		CreateSession, ListSessions, Reschedule, PublicLink, Record, SeeRecording, Publish, Chat, Present, Upload,
		SeeDocuments, SeeAllDocs, LabelExhibit, SeeJournal, Close, Bundle,
	}),
	Party:       {ViewSession, Publish, Chat, Upload, SeeDocuments, SeeParticipant},
	Counsel:     {ViewSession, Publish, Chat, Upload, SeeDocuments, SeeParticipant},
	Witness:     {ViewSession, Publish, Chat, SeeParticipant},
	Interpreter: {ViewSession, Publish, Chat, SeeDocuments, SeeParticipant},
	Observer:    {ViewSession},
	Notary: concat(moderate, []Action{
		CreateSession, ListSessions, Reschedule, Record, SeeRecording, Publish, Chat, Present, Upload, SeeDocuments,
		SeeAllDocs, Sign, SeeJournal, Close, Seal, LegalHold, Bundle, SeeRegister,
	}),
	EmbassyOfficer: {ViewSession, ListSessions, Publish, Chat, SeeDocuments, SeeAllDocs, SeeParticipant, IdentityCheck},
	Principal:      {ViewSession, Publish, Chat, SeeDocuments, SeeAllDocs, Sign, SeeParticipant},
	Admin: {
		CreateSession, ListSessions, ViewSession, Reschedule, Invite, Revoke, AssignStaff, PublicLink, SeeParticipant,
		SeeDocuments, SeeAllDocs, SeeJournal, SeeRecording, Close, LegalHold, Bundle, SeeRegister, VerifyJournal, ManageStaff,
	},
}

func concat(a, b []Action) []Action { return append(slices.Clone(a), b...) }

// Allowed reports whether role r may perform action a.
func Allowed(r Role, a Action) bool { return slices.Contains(matrix[r], a) }

// ForbiddenError names the refused action and the role that tried it. Its
// kind is fault.Forbidden, and its text is what the caller is told.
type ForbiddenError struct {
	Role   Role
	Action Action
}

func (e *ForbiddenError) Error() string {
	return "forbidden: " + string(e.Action) + " is not allowed for role " + string(e.Role)
}

// FaultKind makes a ForbiddenError a fault.Public error.
func (e *ForbiddenError) FaultKind() fault.Kind { return fault.Forbidden }

// Unwrap lets errors.Is(err, fault.Forbidden) match.
func (e *ForbiddenError) Unwrap() error { return fault.Forbidden }

// Check returns a *ForbiddenError unless r may perform a.
func Check(r Role, a Action) error {
	if Allowed(r, a) {
		return nil
	}
	return &ForbiddenError{Role: r, Action: a}
}

// Official roles are held by staff members, who take part in a session as
// themselves once assigned to it; no invitation is ever issued for one.
var officialRoles = []Role{Judge, Clerk, Notary, EmbassyOfficer}

// IsOfficial reports whether r is a role only staff take in a session.
func (r Role) IsOfficial() bool { return slices.Contains(officialRoles, r) }

// invites says which roles each role may invite: only roles that are not
// official, and never one with powers the inviter lacks (TestInvitesGrantNoMorePower).
var invites = map[Role][]Role{
	Judge:  {Party, Counsel, Witness, Interpreter, Observer},
	Clerk:  {Party, Counsel, Witness, Interpreter, Observer},
	Notary: {Principal, Witness, Interpreter, Observer},
	Admin:  {Party, Counsel, Witness, Interpreter, Observer},
}

// assigns says which official roles each role may assign to a session: the
// clerk picks the judge, the notary the embassy officer. Assignment lends
// no power: the assignee acts with their own staff role.
var assigns = map[Role][]Role{
	Judge:  {Judge, Clerk},
	Clerk:  {Judge, Clerk},
	Notary: {EmbassyOfficer},
	Admin:  {Judge, Clerk, Notary, EmbassyOfficer},
}

// MayInvite reports whether a caller acting as by may invite someone as r.
func MayInvite(by, r Role) bool { return slices.Contains(invites[by], r) }

// MayAssign reports whether a caller acting as by may assign a staff member
// holding role r to a session.
func MayAssign(by, r Role) bool { return slices.Contains(assigns[by], r) }

// Invitable returns the roles by may invite, in matrix order.
func Invitable(by Role) []Role { return slices.Clone(invites[by]) }

// Assignable returns the official roles by may assign, in matrix order.
func Assignable(by Role) []Role { return slices.Clone(assigns[by]) }

// Caller is who performs an action in a session, as the session layer
// established it: the layers above pass it down instead of a token.
type Caller struct {
	Actor         string    // journal actor, e.g. "participant:<id>" or "staff:<id>"
	Name          string    // display name, used in signatures and records
	Role          Role      // role in this session
	ParticipantID uuid.UUID // uuid.Nil for staff not taking part (an admin, or before entering the room)
}

// MayCreate reports whether a staff role may create sessions of kind k:
// clerks and judges schedule hearings, notaries notarial acts, admins both.
func MayCreate(r Role, k Kind) bool {
	switch r {
	case Admin:
		return true
	case Judge, Clerk:
		return k == Hearing
	case Notary:
		return k == Notarisation
	}
	return false
}
