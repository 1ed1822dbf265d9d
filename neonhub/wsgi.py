from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from web.api.content_type import refuse_unreadable_content_types_wsgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neonhub.settings")

application = refuse_unreadable_content_types_wsgi(get_wsgi_application())
