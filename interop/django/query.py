"""Runs `select current_user` through Django's ORM connection with seedsite.settings (the seed's
Django snippet). argv[1] = system | user | sp picks the snippet's authentication block.
Prints current_user; any failure exits non-zero with the exception."""
import os
import sys

os.environ['PGENTRA_INTEROP_AUTH'] = sys.argv[1] if len(sys.argv) > 1 else 'system'
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'seedsite.settings')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import django  # noqa: E402
from django.db import connection  # noqa: E402

django.setup()
with connection.cursor() as cursor:
    cursor.execute('select current_user')
    print(cursor.fetchone()[0])
