// Point-in-time joins over the offline log live in this target.
