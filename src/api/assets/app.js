// The pages' script: keeps the status and franchise pages live over /api/events
// (Server-Sent Events), sends the import form and the buttons to the JSON API.
// Plain JavaScript, no build step; the binary serves it as it is.
(function () {
  'use strict';

  var main = document.querySelector('main[data-page]');
  var page = main ? main.dataset.page : '';
  var live = document.getElementById('live');
  var conn = document.getElementById('conn');
  var notice = document.getElementById('notice');
  var banner = document.getElementById('franchise-progress');
  var fragmentUrl = page === 'status' ? '/fragments/status'
    : page === 'franchise' ? '/fragments/franchise/' + main.dataset.root : '';

  // The same wording as the server's page.rs (human_secs, eta_text, figure).
  function human(secs) {
    if (!isFinite(secs) || secs < 0) secs = 0;
    var whole = Math.round(secs);
    if (whole < 60) return whole + ' s';
    if (whole < 3600) return Math.round(secs / 60) + ' min';
    var minutes = Math.round(secs / 60);
    return Math.floor(minutes / 60) + ' h ' + (minutes % 60) + ' min';
  }
  function etaText(eta) {
    var floor = eta.at_least_secs;
    if (!(eta.secs >= 1)) return floor != null ? 'estimating…' : 'almost done';
    if (floor != null && floor >= 1 && eta.secs - floor >= 1)
      return '~' + human(eta.secs) + ' (at least ' + human(floor) + ')';
    return '~' + human(eta.secs);
  }
  function figure(p, settled) {
    return p.state === 'running' ? 'Importing ' + settled + '/' + p.discovered
      : 'Imported ' + p.done + '/' + p.discovered;
  }

  function say(text, bad) {
    if (!notice) return;
    notice.textContent = text;
    notice.className = 'notice' + (bad ? ' bad' : '');
    notice.hidden = false;
    clearTimeout(say.timer);
    say.timer = setTimeout(function () { notice.hidden = true; }, 6000);
  }

  // Times the server wrote in UTC, shown in local time.
  function localize() {
    var times = document.querySelectorAll('time[data-ms]');
    for (var i = 0; i < times.length; i++) {
      times[i].textContent = new Date(Number(times[i].dataset.ms)).toLocaleTimeString();
    }
  }

  // Links that name an anime by id get its title from the store, asked once per page.
  var titles = {};
  function fillTitles() {
    var links = document.querySelectorAll('a[data-title-of]');
    for (var i = 0; i < links.length; i++) {
      var link = links[i], id = link.dataset.titleOf;
      if (typeof titles[id] === 'string') link.textContent = titles[id];
      else if (titles[id] === undefined) lookUp(id);
    }
  }
  function lookUp(id) {
    titles[id] = null; // asking
    fetch('/api/anime/' + id, { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (anime) {
        var t = anime && anime.title;
        var name = t && (t.english || t.romaji || t.native);
        if (name) { titles[id] = name; fillTitles(); } else forget(id);
      }, function () { forget(id); });
  }
  var tries = {};
  function forget(id) {
    // Not stored yet (its import may be fetching it): ask again, less and less often.
    tries[id] = (tries[id] || 0) + 1;
    setTimeout(function () {
      delete titles[id];
      fillTitles();
    }, Math.min(1000 * Math.pow(2, tries[id] - 1), 60000));
  }

  // Fetches the page's fragment and swaps it in; calls within `delay` ms become one.
  var timer = null, loading = false, again = false, shown = live ? live.innerHTML : '';
  function refresh(delay) {
    if (!fragmentUrl || !live || timer) return;
    timer = setTimeout(load, delay === undefined ? 300 : delay);
  }
  function load() {
    timer = null;
    if (loading) { again = true; return; }
    loading = true;
    fetch(fragmentUrl, { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && html !== shown) {
          live.innerHTML = html;
          shown = html;
          localize();
          fillTitles();
        }
      })
      .catch(function () { /* the next event or tick tries again */ })
      .then(function () {
        loading = false;
        if (again) { again = false; refresh(); }
      });
  }

  // One import's progress, written into its row in place.
  function onProgress(event) {
    var p = JSON.parse(event.data);
    if (page === 'franchise') { showBanner(p); return; }
    var row = live && live.querySelector('tr[data-import-id="' + p.import_id + '"]');
    if (!row) { refresh(); return; }
    if (row.dataset.state !== p.state || Number(row.dataset.failed || 0) !== p.failed) refresh();
    var settled = p.done + p.failed + Number(row.dataset.cancelled || 0);
    var bar = row.querySelector('progress');
    if (bar) { bar.max = Math.max(p.discovered, 1); bar.value = settled; }
    var fig = row.querySelector('.figure');
    if (fig) fig.textContent = figure(p, settled);
    var eta = row.querySelector('.eta');
    if (eta && p.state === 'running') eta.textContent = p.eta ? etaText(p.eta) : 'estimating…';
  }

  // On a franchise page: the progress of an import of this very franchise.
  function showBanner(p) {
    if (!banner || String(p.root) !== main.dataset.root) return;
    if (p.state !== 'running') { banner.hidden = true; refresh(); return; }
    banner.textContent = 'Import #' + p.import_id + ': ' + figure(p, p.done + p.failed) +
      (p.eta ? ', ' + etaText(p.eta) + ' left' : '');
    banner.hidden = false;
  }

  function setConn(state, text) {
    if (!conn) return;
    conn.dataset.state = state;
    conn.textContent = text;
  }

  function connect() {
    if (!fragmentUrl) { if (conn) conn.hidden = true; return; }
    if (!window.EventSource) { setConn('off', 'polling'); return; }
    var source = new EventSource('/api/events');
    source.onopen = function () {
      setConn('live', 'live');
      refresh(); // catch up with anything said before we listened
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        setConn('off', 'polling');
        setTimeout(connect, 10000);
      } else {
        setConn('connecting', 'reconnecting…');
      }
    };
    source.addEventListener('progress', onProgress);
    ['finished', 'budget_parked', 'budget_resumed', 'upstream_down', 'upstream_up', 'lagged'].forEach(function (name) {
      source.addEventListener(name, function () { refresh(); });
    });
    if (page === 'franchise') {
      source.addEventListener('stored', function () { refresh(500); });
    }
  }

  // POSTs to the API; resolves to its JSON, rejects with its message.
  function post(url, body) {
    var init = { method: 'POST', credentials: 'same-origin', headers: {} };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = JSON.parse(text); } catch (e) { data = null; }
        if (!r.ok) throw new Error((data && data.message) || 'HTTP ' + r.status);
        return data || {};
      });
    });
  }

  // Buttons anywhere, also those a refresh swapped in.
  document.addEventListener('click', function (event) {
    var button = event.target.closest && event.target.closest('button[data-action]');
    if (!button) return;
    event.preventDefault();
    var action = button.dataset.action, id = button.dataset.importId, request;
    if (action === 'cancel' || action === 'retry') {
      request = post('/api/imports/' + id + '/' + action).then(function () {
        return 'Import #' + id + (action === 'cancel' ? ' cancelled' : ' queued again');
      });
    } else if (action === 'import') {
      request = post('/api/imports', { root: Number(button.dataset.root) }).then(function (r) {
        return 'Import #' + r.import_id + ' started';
      });
    } else {
      return;
    }
    button.disabled = true;
    request.then(function (text) {
      say(text);
      refresh(0);
    }, function (err) {
      say(err.message, true);
      button.disabled = false;
    });
  });

  // The start form: JSON to POST /api/imports; the API's message shows inline on an error.
  var form = document.getElementById('import-form');
  if (form) {
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var fields = form.elements;
      var msg = document.getElementById('form-msg');
      var number = function (v) { return /^\d+$/.test(v) ? Number(v) : v; };
      var raw = fields.root.value.trim();
      var url = raw.match(/anilist\.co\/anime\/(\d+)/);
      var body = { root: number(url ? url[1] : raw) };
      var depth = fields.depth.value.trim(), max = fields.max_items.value.trim();
      if (depth) body.depth = number(depth);
      if (max) body.max_items = number(max);
      if (fields.force_refresh.checked) body.force_refresh = true;
      var button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      clearTimeout(form.msgTimer);
      post('/api/imports', body).then(function (r) {
        msg.textContent = 'Import #' + r.import_id + ' started.';
        msg.className = 'form-msg ok';
        fields.root.value = '';
        refresh(0);
        // The row in Imports says the rest; the note goes after a few seconds.
        form.msgTimer = setTimeout(function () { msg.hidden = true; }, 6000);
      }, function (err) {
        msg.textContent = err.message;
        msg.className = 'form-msg bad';
      }).then(function () {
        msg.hidden = false;
        button.disabled = false;
      });
    });
  }

  // A message about the last submit goes once the user types the next id.
  if (form) {
    form.elements.root.addEventListener('input', function () {
      var msg = document.getElementById('form-msg');
      if (msg) msg.hidden = true;
    });
  }

  localize();
  fillTitles();
  connect();
  // A fallback for a stream that is down, and for the "ago" figures.
  if (fragmentUrl) {
    setInterval(function () { if (!document.hidden) refresh(0); },
      page === 'status' ? 5000 : 15000);
  }
})();
