"""One module per page type: the sessions list, a session, a request, and the JSON API."""
