// Which roles an invite form offers. Officials (judge, clerk, notary,
// embassy officer) are staff: they are assigned to a session and enter as
// themselves, so no form ever offers to invite one (the server refuses it
// too). Kept apart from invite.js so that node can test it.

/**
 * invitableRoles filters a session kind's roles: no official, and — when
 * the caller's own list is known (the console's may_invite) — only those.
 */
export function invitableRoles(kindRoles, officials, mayInvite) {
  return kindRoles.filter((r) => !officials.includes(r) && (!mayInvite || mayInvite.includes(r)));
}
