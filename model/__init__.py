"""Everything at model level, by role.

Data flows one way: ``nets`` (networks and data) -> ``compress`` (methods, int8 lowering)
-> ``program`` (the program file) -> the engine, which ``golden`` models bit for bit.
``contract`` states what the hardware and the golden model share; ``codecs`` are the
bit-exact coders both the program writer and the golden model use.

Package ``__init__`` files hold no imports, so importing a module never pulls in its package's siblings.
"""
