// A Conduit frontend's journey through the API, with the generated typed
// documents: two users sign up and in, one writes articles, the other
// follows, favorites, comments and reads the feed; settings change; signing
// out ends the session.
//
//   CONDUIT_URL=http://127.0.0.1:8080/graphql npm run journey
//   CONDUIT_PERSISTED=1   sends only document hashes (trusted documents or
//                         documents already registered); fails if any
//                         request has to carry a document's text
//   CONDUIT_PERSISTED=apq automatic persisted queries: hash first, the text
//                         when the server does not know it yet
//   CONDUIT_JWT_SECRET    the server's JWT_SECRET: lets the journey make an
//                         access token that has expired, as every token does
//                         after 15 minutes, and browse on with it
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConduitClient, ConduitError, type PersistedMode } from './client';
import {
  AddCommentDocument,
  ArticleCommentsDocument,
  ArticlePageDocument,
  ChangePasswordDocument,
  CommentEventsDocument,
  CreateArticleDocument,
  DeleteArticleDocument,
  DeleteCommentDocument,
  FavoriteArticleDocument,
  FollowUserDocument,
  GlobalFeedDocument,
  PersonalFeedDocument,
  PopularTagsDocument,
  ProfileArticlesDocument,
  ProfileDocument,
  ProfileFavoritedArticlesDocument,
  RefreshSessionDocument,
  SignInDocument,
  SignOutDocument,
  SignUpDocument,
  UnfavoriteArticleDocument,
  UnfollowUserDocument,
  UpdateArticleDocument,
  UpdateSettingsDocument,
  ViewerDocument,
  type ArticleListFragment,
  type UserErrorFieldsFragment,
} from './gql/graphql';

class Mismatch extends Error {}

function check(condition: unknown, message: string, actual?: unknown): asserts condition {
  if (!condition) {
    throw new Mismatch(actual === undefined ? message : `${message}; got ${JSON.stringify(actual)}`);
  }
}

function noUserErrors(errors: readonly UserErrorFieldsFragment[] | undefined, what: string): void {
  check(errors && errors.length === 0, `${what} returned user errors`, errors);
}

// How long the journey waits for anything the server pushes.
const WAIT_MS = 15_000;

// `promise`, or a failed check naming `what` once `ms` have passed.
async function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Mismatch(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function present<T>(value: T | null | undefined, what: string): T {
  check(value !== null && value !== undefined, `${what} is missing`);
  return value;
}

function slugs(list: ArticleListFragment): string[] {
  return list.edges.map((edge) => edge.node.slug);
}

function persistedMode(): PersistedMode {
  const value = (process.env.CONDUIT_PERSISTED ?? '').toLowerCase();
  if (value === '' || value === '0' || value === 'false') return 'off';
  if (value === 'apq') return 'apq';
  return 'hash-only';
}

function loadManifest(): Record<string, string> {
  const path = new URL('./gql/persisted-documents.json', import.meta.url);
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>;
}

const url = process.env.CONDUIT_URL ?? 'http://127.0.0.1:8080/graphql';
const mode = persistedMode();
const anonymous = new ConduitClient({ url, persisted: mode, manifest: loadManifest() });
const run = randomBytes(4).toString('hex');
let step = 'start';

function begin(name: string): void {
  step = name;
}

function done(detail = ''): void {
  console.log(`ok  ${step}${detail ? `: ${detail}` : ''}`);
}

interface Account {
  username: string;
  email: string;
  password: string;
  id: string;
  client: ConduitClient;
  refreshToken: string;
}

async function signUpAndIn(name: string): Promise<Account> {
  const username = `${name}_${run}`;
  const email = `${username}@example.com`;
  const password = `secret-${randomBytes(8).toString('hex')}`;
  const created = present((await anonymous.request(SignUpDocument, { input: { username, email, password } })).createUser, 'createUser');
  noUserErrors(created.errors, 'createUser');
  check(created.user?.username === username, 'createUser returns the new user', created.user);

  const session = present((await anonymous.request(SignInDocument, { input: { email, password } })).signInUser, 'signInUser');
  noUserErrors(session.errors, 'signInUser');
  const token = present(session.token, 'signInUser.token');
  const refreshToken = present(session.refreshToken, 'signInUser.refreshToken');
  const user = present(session.viewer?.user, 'signInUser.viewer.user');
  check(user.email === email, 'signInUser shows the viewer their email', user);
  return { username, email, password, id: user.id, client: anonymous.withToken(token), refreshToken };
}

/** The claims of a token, unverified. */
function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

/**
 * `token` as it will be once its time is up: the same user and session,
 * issued an hour ago and expired 45 minutes ago, signed as the server
 * signs (HS256, `kid` derived from the secret).
 */
function expiredTokenLike(token: string, secret: string): string {
  const now = Math.floor(Date.now() / 1000);
  const kid = createHash('sha256').update(`conduit-jwt-kid:${secret}`).digest('hex').slice(0, 16);
  const header = Buffer.from(JSON.stringify({ typ: 'JWT', alg: 'HS256', kid })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ ...claimsOf(token), iat: now - 3600, exp: now - 2700 })).toString('base64url');
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

async function journey(): Promise<void> {
  console.log(`journey against ${url} (persisted: ${mode}, run ${run})`);

  begin('sign up and sign in two users');
  const author = await signUpAndIn('author');
  const reader = await signUpAndIn('reader');
  done(`${author.username}, ${reader.username}`);

  begin('current viewer');
  const me = present((await reader.client.request(ViewerDocument)).viewer, 'viewer');
  check(me.user.username === reader.username && me.user.email === reader.email, 'viewer is the signed-in user', me);
  check((await anonymous.request(ViewerDocument)).viewer === null, 'viewer is null when anonymous');
  done();

  begin('refresh the session');
  const refreshed = present(
    (await reader.client.request(RefreshSessionDocument, { refreshToken: reader.refreshToken })).refreshSession,
    'refreshSession',
  );
  noUserErrors(refreshed.errors, 'refreshSession');
  reader.client = reader.client.withToken(present(refreshed.token, 'refreshSession.token'));
  reader.refreshToken = present(refreshed.refreshToken, 'refreshSession.refreshToken');
  check(reader.refreshToken !== '' && refreshed.tokenExpiresAt, 'refreshSession returns a new refresh token and expiry', refreshed);
  check((await reader.client.request(ViewerDocument)).viewer?.user.username === reader.username, 'the refreshed token works');
  done();

  begin('write articles with tags');
  const tag = `journey${run}`;
  const created = present(
    (
      await author.client.request(CreateArticleDocument, {
        input: {
          title: `Typed journeys ${run}`,
          description: 'Codegen, persisted documents and a feed',
          body: 'Every operation is checked against the schema.',
          tagList: [` ${tag.toUpperCase()} `, 'GraphQL', tag],
        },
      })
    ).createArticle,
    'createArticle',
  );
  noUserErrors(created.errors, 'createArticle');
  const article = present(created.article, 'createArticle.article');
  check(
    JSON.stringify(article.tagList) === JSON.stringify([tag, 'graphql']),
    'tags are trimmed, lower-cased and de-duplicated',
    article.tagList,
  );
  check(article.author?.username === author.username, 'the author is the viewer', article.author);
  const extras: string[] = [];
  for (const n of [1, 2]) {
    const extra = present(
      (
        await author.client.request(CreateArticleDocument, {
          input: { title: `Extra ${n} ${run}`, description: 'More', body: 'More words.', tagList: [tag] },
        })
      ).createArticle?.article,
      'createArticle.article',
    );
    extras.push(extra.id);
  }
  done(`${article.slug} and 2 more tagged ${tag}`);

  begin('edit an article');
  const updated = present(
    (await author.client.request(UpdateArticleDocument, { input: { id: article.id, body: 'Edited with two hands.' } }))
      .updateArticle,
    'updateArticle',
  );
  noUserErrors(updated.errors, 'updateArticle');
  check(updated.article?.body === 'Edited with two hands.' && updated.article.slug === article.slug, 'updateArticle changes the body only', updated.article);
  try {
    await reader.client.request(UpdateArticleDocument, { input: { id: article.id, body: 'not mine' } });
    check(false, "updating someone else's article must fail");
  } catch (error) {
    check(error instanceof ConduitError && error.code === 'FORBIDDEN', "updating someone else's article is FORBIDDEN", String(error));
  }
  done();

  begin('global feed filtered by tag, paginated');
  const page1 = (await anonymous.request(GlobalFeedDocument, { tag, first: 2 })).articles;
  check(page1.edges.length === 2 && page1.pageInfo.hasNextPage && page1.pageInfo.endCursor, 'first page of 2 with a next page', page1.pageInfo);
  const page2 = (await anonymous.request(GlobalFeedDocument, { tag, first: 2, after: page1.pageInfo.endCursor })).articles;
  check(page2.edges.length === 1 && !page2.pageInfo.hasNextPage, 'second page holds the last article', page2.pageInfo);
  const all = [...slugs(page1), ...slugs(page2)];
  check(new Set(all).size === 3 && all.includes(article.slug), 'the pages hold the three tagged articles once each', all);
  done(all.join(', '));

  begin('delete an article');
  const deletedId = present(extras.pop(), 'extra article');
  const deleted = present((await author.client.request(DeleteArticleDocument, { id: deletedId })).deleteArticle, 'deleteArticle');
  check((await anonymous.request(ArticlePageDocument, { slug: deleted.article.slug })).article === null, 'a deleted article is gone', deleted.article);
  const afterDelete = (await anonymous.request(GlobalFeedDocument, { tag })).articles;
  check(afterDelete.edges.length === 2, 'the deleted article left the tag list', slugs(afterDelete));
  done(deleted.article.slug);

  begin('popular tags');
  const tags = (await anonymous.request(PopularTagsDocument, { first: 100 })).tags;
  check(Array.isArray(tags) && tags.length > 0, 'tags lists something', tags);
  check(tags.length === 100 || tags.includes(tag), `popular tags include ${tag}`, tags);
  done(`${tags.length} tags`);

  begin('profile and follow');
  const profile = present((await reader.client.request(ProfileDocument, { username: author.username })).user, 'user');
  check(profile.id === author.id && !profile.followedByViewer && profile.followers.totalCount === 0, 'profile before following', profile);
  check(slugs(profile.articles).includes(article.slug), "the profile lists the author's articles", slugs(profile.articles));
  const followed = present((await reader.client.request(FollowUserDocument, { id: profile.id })).followUser, 'followUser');
  noUserErrors(followed.errors, 'followUser');
  check(followed.user?.followedByViewer === true && followed.user.followers.totalCount === 1, 'followUser returns the new state', followed.user);
  const self = present((await reader.client.request(FollowUserDocument, { id: reader.id })).followUser, 'followUser');
  check(self.errors.length === 1, 'following yourself is refused in errors', self.errors);
  done();

  begin('favorite');
  const favorite = present(
    (await reader.client.request(FavoriteArticleDocument, { id: article.id })).favoriteArticle?.article,
    'favoriteArticle.article',
  );
  check(favorite.viewerHasFavorited && favorite.favoritesCount === 1, 'favoriteArticle returns the new count', favorite);
  done();

  begin('comment');
  const body = `Great read (${run})`;
  const added = present((await reader.client.request(AddCommentDocument, { articleId: article.id, body })).addComment, 'addComment');
  noUserErrors(added.errors, 'addComment');
  const comment = present(added.comment, 'addComment.comment');
  check(comment.body === body && comment.author?.username === reader.username, 'addComment returns the comment', comment);
  const scratch = present(
    (await reader.client.request(AddCommentDocument, { articleId: article.id, body: 'typo' })).addComment?.comment,
    'addComment.comment',
  );
  const removed = (await reader.client.request(DeleteCommentDocument, { id: scratch.id })).deleteComment;
  check(removed?.comment?.id === scratch.id, 'deleteComment returns the comment', removed);
  done();

  begin('comments arrive live, and a reconnect resumes where it stopped');
  {
    // Another of the author's articles, so the article page below still
    // shows the one comment it expects.
    const watched = present(extras[0], 'an extra article');
    const live = author.client.subscribe(CommentEventsDocument, { articleId: watched });
    // Without a cursor the subscription starts when the server has set it
    // up, which the client is not told: a comment is written, and written
    // again each second, until one arrives.
    const written: string[] = [];
    const next = live.next();
    let event: Awaited<typeof next> | undefined;
    const deadline = Date.now() + WAIT_MS;
    while (event === undefined) {
      check(Date.now() < deadline, `no comment arrived live within ${WAIT_MS} ms of subscribing`, written);
      const body = `Live ${run} #${written.length}`;
      written.push(body);
      await reader.client.request(AddCommentDocument, { articleId: watched, body });
      event = await Promise.race([next, new Promise<undefined>((resolve) => setTimeout(resolve, 1_000, undefined))]);
    }
    const arrived = present(event.value, 'commentEvents').commentEvents;
    const first = written.indexOf(arrived.comment?.body ?? '');
    check(arrived.change === 'ADDED' && first >= 0, 'the new comment arrives', arrived);
    check(arrived.comment?.author?.username === reader.username, 'with its author', arrived.comment);
    await within(Promise.resolve(live.return?.()), 'closing the subscription');

    // Those written after the one that arrived were missed too.
    const missed = [...written.slice(first + 1), `Missed one ${run}`, `Missed two ${run}`];
    for (const text of missed) await reader.client.request(AddCommentDocument, { articleId: watched, body: text });
    const resumed = author.client.subscribe(CommentEventsDocument, { articleId: watched, after: arrived.cursor });
    const replayed: string[] = [];
    for (const _ of missed) {
      const replay = await within(resumed.next(), 'a comment written while away');
      replayed.push(present(replay.value, 'commentEvents').commentEvents.comment?.body ?? '');
    }
    check(JSON.stringify(replayed) === JSON.stringify(missed), 'the comments written while away arrive once, in order', replayed);
    // Nothing more was replayed: the next event is a comment written now.
    const marker = `After the replay ${run}`;
    await reader.client.request(AddCommentDocument, { articleId: watched, body: marker });
    const after = present((await within(resumed.next(), 'the comment written after the replay')).value, 'commentEvents');
    check(after.commentEvents.comment?.body === marker, 'nothing is replayed twice', after.commentEvents);
    await within(Promise.resolve(resumed.return?.()), 'closing the subscription');
  }
  done();

  begin('personal feed');
  const feed = present((await reader.client.request(PersonalFeedDocument, { first: 10 })).viewer, 'viewer').feed;
  const inFeed = feed.edges.find((edge) => edge.node.slug === article.slug)?.node;
  check(inFeed, "the followed author's article is in the feed", slugs(feed));
  check(inFeed.viewerHasFavorited === true && inFeed.favoritesCount === 1, 'the feed shows the favorite', inFeed);
  done(`${feed.edges.length} articles`);

  begin('article page');
  const page = present((await reader.client.request(ArticlePageDocument, { slug: article.slug })).article, 'article');
  check(page.viewerHasFavorited && page.author?.followedByViewer, 'the article page shows favorite and follow state', page);
  check(
    page.comments.length === 1 && page.comments[0]?.body === body && page.comments[0].author?.username === reader.username,
    'the article page shows the comment',
    page.comments,
  );
  const anonymousPage = present((await anonymous.request(ArticlePageDocument, { slug: article.slug })).article, 'article');
  check(!anonymousPage.viewerHasFavorited && anonymousPage.favoritesCount === 1, 'anonymous viewers see the count, not a favorite', anonymousPage);
  const comments = present((await anonymous.request(ArticleCommentsDocument, { slug: article.slug, first: 10 })).article, 'article');
  check(comments.commentsConnection.edges.map((edge) => edge.node.id).join() === comment.id, 'the comments connection holds the comment', comments);
  done();

  begin('profile tabs');
  const favorites = present((await anonymous.request(ProfileFavoritedArticlesDocument, { username: reader.username })).user, 'user');
  check(JSON.stringify(slugs(favorites.favoriteArticles)) === JSON.stringify([article.slug]), "the reader's favorites tab", slugs(favorites.favoriteArticles));
  const written = present((await anonymous.request(ProfileArticlesDocument, { username: author.username, first: 1 })).user, 'user');
  check(written.articles.edges.length === 1 && written.articles.pageInfo.hasNextPage, "the author's articles, paginated", written.articles.pageInfo);
  done();

  begin('unfavorite and unfollow');
  const unfavorited = present(
    (await reader.client.request(UnfavoriteArticleDocument, { id: article.id })).unfavoriteArticle?.article,
    'unfavoriteArticle.article',
  );
  check(!unfavorited.viewerHasFavorited && unfavorited.favoritesCount === 0, 'unfavoriteArticle returns the new count', unfavorited);
  const unfollowed = present((await reader.client.request(UnfollowUserDocument, { id: author.id })).unfollowUser?.user, 'unfollowUser.user');
  check(!unfollowed.followedByViewer && unfollowed.followers.totalCount === 0, 'unfollowUser returns the new state', unfollowed);
  const emptyFeed = present((await reader.client.request(PersonalFeedDocument, {})).viewer, 'viewer').feed;
  check(!slugs(emptyFeed).includes(article.slug), 'the feed no longer holds the article', slugs(emptyFeed));
  done();

  begin('browse on with an expired access token');
  const secret = process.env.CONDUIT_JWT_SECRET;
  if (secret) {
    const rejections: string[] = [];
    const expired = new ConduitClient({
      url,
      token: expiredTokenLike(reader.client.token ?? '', secret),
      persisted: mode,
      manifest: loadManifest(),
      onTokenRejected: (rejection) => rejections.push(rejection.code),
    });
    // What a frontend that keeps only the access token does: it asks again
    // with the same token, and must get the public pages, not errors.
    const home = await expired.request(GlobalFeedDocument, {});
    check(slugs(home.articles).length > 0, 'the home page lists articles with an expired token', home.articles);
    const tags = await expired.request(PopularTagsDocument);
    check(Array.isArray(tags.tags), 'the tags come with an expired token', tags);
    check((await expired.request(ViewerDocument)).viewer === null, 'an expired token is no viewer');
    check(rejections.length === 3 && rejections.every((code) => code === 'TOKEN_EXPIRED'), 'each answer says the token expired', rejections);
    const last = expired.sent.at(-1);
    check(last?.status === 200 && last.challenge?.startsWith('Bearer error="invalid_token"'), 'WWW-Authenticate says invalid_token', last);
    // A client that can act on it refreshes and is the viewer again.
    const renewed = present(
      (await anonymous.request(RefreshSessionDocument, { refreshToken: reader.refreshToken })).refreshSession,
      'refreshSession',
    );
    noUserErrors(renewed.errors, 'refreshSession');
    reader.client = reader.client.withToken(present(renewed.token, 'refreshSession.token'));
    reader.refreshToken = present(renewed.refreshToken, 'refreshSession.refreshToken');
    check((await reader.client.request(ViewerDocument)).viewer?.user.username === reader.username, 'the refreshed token is the viewer again');
    done();
  } else {
    done('skipped: set CONDUIT_JWT_SECRET to the server\'s JWT_SECRET');
  }

  begin('save settings with a blank password');
  // The settings form of RealWorld frontends sends every field, the
  // password blank when it is not being changed.
  const blank = present(
    (
      await reader.client.request(UpdateSettingsDocument, {
        input: { username: reader.username, email: reader.email, bio: 'Saved with a blank password.', image: '', password: '' },
      })
    ).updateUser,
    'updateUser',
  );
  noUserErrors(blank.errors, 'updateUser with a blank password');
  check(blank.user?.bio === 'Saved with a blank password.', 'the bio is saved', blank.user);
  const samePassword = present(
    (await anonymous.request(SignInDocument, { input: { email: reader.email, password: reader.password } })).signInUser,
    'signInUser',
  );
  noUserErrors(samePassword.errors, 'signInUser with the unchanged password');
  check((await reader.client.request(ViewerDocument)).viewer?.user.username === reader.username, 'the session that saved is still live');
  done();

  begin('update settings');
  const settings = present(
    (
      await reader.client.request(UpdateSettingsDocument, {
        input: { bio: 'Reads everything twice.', image: 'https://example.com/reader.png' },
      })
    ).updateUser,
    'updateUser',
  );
  noUserErrors(settings.errors, 'updateUser');
  check(
    settings.user?.bio === 'Reads everything twice.' && settings.user.image === 'https://example.com/reader.png' && settings.user.username === reader.username,
    'updateUser returns the new settings',
    settings.user,
  );
  const invalid = present((await reader.client.request(UpdateSettingsDocument, { input: { email: 'not an email' } })).updateUser, 'updateUser');
  check(invalid.errors.some((error) => error.path === 'email' && error.code === 'INVALID'), 'an invalid email comes back as a user error', invalid.errors);
  done();

  begin('change password');
  const newPassword = `${author.password}-new`;
  const changed = present(
    (await author.client.request(ChangePasswordDocument, { currentPassword: author.password, newPassword })).changePassword,
    'changePassword',
  );
  noUserErrors(changed.errors, 'changePassword');
  const oldSignIn = present(
    (await anonymous.request(SignInDocument, { input: { email: author.email, password: author.password } })).signInUser,
    'signInUser',
  );
  check(oldSignIn.token === null && oldSignIn.errors.some((error) => error.code === 'INVALID_CREDENTIALS'), 'the old password is refused', oldSignIn.errors);
  const newSignIn = present((await anonymous.request(SignInDocument, { input: { email: author.email, password: newPassword } })).signInUser, 'signInUser');
  check(newSignIn.token, 'the new password signs in', newSignIn.errors);
  done();

  begin('sign out');
  const signedOut = present((await reader.client.request(SignOutDocument)).signOut, 'signOut');
  noUserErrors(signedOut.errors, 'signOut');
  check((await reader.client.request(ViewerDocument)).viewer === null, 'the signed-out token is no viewer');
  check(reader.client.sent.at(-1)?.tokenRejection?.code === 'SESSION_REVOKED', 'the answer says the session ended', reader.client.sent.at(-1));
  try {
    await reader.client.request(UpdateSettingsDocument, { input: { bio: 'too late' } });
    check(false, 'the signed-out token must not change anything');
  } catch (error) {
    check(error instanceof ConduitError && error.code === 'UNAUTHENTICATED', 'a mutation with the signed-out token is UNAUTHENTICATED', String(error));
  }
  done();

  if (mode === 'hash-only') {
    begin('hash-only requests');
    const sent = anonymous.sent;
    check(sent.length > 0 && sent.every((request) => request.withHash && !request.withQuery), 'every request carried only a hash');
    done(`${sent.length} requests`);
  }
}

try {
  await journey();
  console.log('journey passed');
} catch (error) {
  const kind = error instanceof Mismatch ? 'mismatch' : 'error';
  console.error(`journey failed at "${step}" (${kind}): ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
