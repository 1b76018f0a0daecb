"""The capture workstation itself: the daemon's CPU and IO priority (priority.py), the page
cache it leaves behind (pagecache.py), and the free space of the disks it depends on
(space.py). A good citizen on a machine whose first job is recording."""
