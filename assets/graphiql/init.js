// Renders GraphiQL for the Conduit GraphQL API. Loaded by index.html after
// react.production.min.js, react-dom.production.min.js, graphiql.min.js and
// graphql-ws.min.js, which define the globals React, ReactDOM, GraphiQL and
// graphqlWs. Queries and mutations go over HTTP; subscriptions over a
// WebSocket on the same path (graphql-transport-ws). The page runs under
// a Content-Security-Policy without 'unsafe-inline', so everything it needs
// lives in files served from /graphiql/.
(function () {
  'use strict';

  var ENDPOINT = '/graphql';

  var DEFAULT_QUERY = [
    '# Welcome to the Conduit GraphQL API.',
    '#',
    '# To act as a user, sign in with the signInUser mutation',
    '# (SignIn below; use your own email and password, and',
    '# createUser to register), copy the "token" from the',
    '# result and put',
    '#',
    '#   {"Authorization": "Bearer <token>"}',
    '#',
    '# in the Headers tab under this editor. Then run Viewer.',
    '# Docs (top left) lists every type, field and argument.',
    '',
    'mutation SignIn {',
    '  signInUser(input: {email: "jake@example.com", password: "jakejakejake"}) {',
    '    token',
    '    refreshToken',
    '    tokenExpiresAt',
    '    errors { message path code }',
    '  }',
    '}',
    '',
    'query Viewer {',
    '  viewer {',
    '    user { username email bio image }',
    '  }',
    '}',
    '',
    'query Home {',
    '  articles(first: 10) {',
    '    edges {',
    '      node { slug title favoritesCount author { username } }',
    '    }',
    '    pageInfo { hasNextPage endCursor }',
    '  }',
    '  tags(first: 10)',
    '}',
    ''
  ].join('\n');

  // Whether the operation GraphiQL is about to run is a subscription, read
  // from the text it sends (its parsed document can lag behind the editor).
  function isSubscription(params) {
    var text = (params.query || '').replace(/#[^\n]*/g, '');
    var name = params.operationName;
    if (name) {
      return new RegExp('(^|[^\\w])subscription\\s+' + name + '(?![\\w])').test(text);
    }
    return /^\s*subscription(?![\w])/.test(text);
  }

  // A subscription's results as they arrive, over a socket of its own that
  // signs in with the Authorization header of the Headers tab.
  function subscribe(params, options) {
    var extra = (options && options.headers) || {};
    var authorization = extra.Authorization || extra.authorization;
    var url = location.origin.replace(/^http/, 'ws') + ENDPOINT;
    var client = graphqlWs.createClient({
      url: url,
      connectionParams: authorization ? { authorization: authorization } : {},
      retryAttempts: 0
    });
    var results = client.iterate({
      query: params.query,
      variables: params.variables || {},
      operationName: params.operationName || null
    });
    return {
      next: function () {
        return results.next();
      },
      return: function () {
        client.dispose();
        return results.return ? results.return() : Promise.resolve({ done: true });
      },
      throw: function (error) {
        client.dispose();
        return Promise.reject(error);
      },
      [Symbol.asyncIterator]: function () {
        return this;
      }
    };
  }

  // Turns any HTTP answer into something GraphiQL can show: the JSON body
  // when there is one, else a GraphQL-style error naming the status.
  function fetcher(params, options) {
    if (typeof graphqlWs !== 'undefined' && isSubscription(params)) {
      return subscribe(params, options);
    }
    var headers = {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json'
    };
    var extra = options && options.headers;
    if (extra && typeof extra === 'object') {
      Object.keys(extra).forEach(function (name) {
        headers[name] = extra[name];
      });
    }
    return fetch(ENDPOINT, {
      method: 'POST',
      headers: headers,
      body: JSON.stringify(params),
      credentials: 'same-origin'
    }).then(function (response) {
      return response.text().then(function (text) {
        try {
          return JSON.parse(text);
        } catch (_) {
          return {
            errors: [{ message: 'HTTP ' + response.status + ': ' + (text || response.statusText) }]
          };
        }
      });
    });
  }

  // GraphiQL's dialogs and menus lock page scrolling by appending a <style>
  // element to <head>, which the CSP (style-src 'self') refuses. Scripts
  // the CSP trusts may still set styles through the CSSOM, so such an
  // element's rules are applied as a constructed style sheet instead, and
  // the element itself is kept out of the document until it is removed.
  function applyInlineStylesThroughCssom() {
    var head = document.head;
    if (!head || !Array.isArray(document.adoptedStyleSheets) || typeof CSSStyleSheet !== 'function') {
      return;
    }
    var parking = document.createElement('div');
    var sheets = new Map();
    var appendChild = head.appendChild;
    head.appendChild = function (node) {
      if (!(node instanceof HTMLStyleElement) || node.hasAttribute('nonce')) {
        return appendChild.call(this, node);
      }
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(node.textContent || '');
      sheets.set(node, sheet);
      document.adoptedStyleSheets = document.adoptedStyleSheets.concat([sheet]);
      return parking.appendChild(node);
    };
    parking.removeChild = function (node) {
      var sheet = sheets.get(node);
      if (sheet) {
        sheets.delete(node);
        document.adoptedStyleSheets = document.adoptedStyleSheets.filter(function (s) {
          return s !== sheet;
        });
      }
      return HTMLElement.prototype.removeChild.call(this, node);
    };
  }

  function render() {
    var container = document.getElementById('graphiql');
    if (typeof React === 'undefined' || typeof ReactDOM === 'undefined' || typeof GraphiQL === 'undefined') {
      container.textContent = 'GraphiQL could not load its scripts from /graphiql/.';
      return;
    }
    applyInlineStylesThroughCssom();
    container.textContent = '';
    ReactDOM.createRoot(container).render(
      React.createElement(GraphiQL, {
        fetcher: fetcher,
        defaultQuery: DEFAULT_QUERY,
        isHeadersEditorEnabled: true,
        defaultEditorToolsVisibility: 'headers',
        shouldPersistHeaders: false
      })
    );
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', render);
  } else {
    render();
  }
})();
