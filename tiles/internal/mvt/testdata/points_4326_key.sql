SELECT ST_AsMVT(t, 'default', 512, '__mvt_geom'), count(*), coalesce(sum(a.__mn), 0)::int8
FROM (
  SELECT count(*) AS __mn, avg(m.x) AS __mx, avg(m.y) AS __my, min(g."id") AS __mk
  FROM "public"."postal" g
  CROSS JOIN LATERAL (SELECT ST_X(g."geom") * 111319.49079327357 AS x, ln(tan(pi() / 4 + radians(least(greatest(ST_Y(g."geom"), -85.0511287798066), 85.0511287798066)) / 2)) * 6378137 AS y) m
  WHERE g."geom" && ST_Transform(ST_ClipByBox2D(ST_Expand(ST_TileEnvelope($1::int, $2::int, $3::int), (626172.1357121639 / 2.0::float8 ^ $1::int)), ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857)), 4326)
  GROUP BY floor(m.x / (40075016.685578488 / 2.0::float8 ^ ($1::int + 8 - $4::int))), floor(m.y / (40075016.685578488 / 2.0::float8 ^ ($1::int + 8 - $4::int)))
) a
JOIN "public"."postal" r ON r."id" = a.__mk
CROSS JOIN LATERAL (SELECT ST_MakePoint(round((a.__mx + 20037508.342789244 - $2::int * (40075016.685578488 / 2.0::float8 ^ $1::int)) * 512 / (40075016.685578488 / 2.0::float8 ^ $1::int)), round((20037508.342789244 - $3::int * (40075016.685578488 / 2.0::float8 ^ $1::int) - a.__my) * 512 / (40075016.685578488 / 2.0::float8 ^ $1::int))) AS __mvt_geom, r."zipcode"::text AS "zipcode", r."place"::text AS "place", a.__mn AS _carto_point_density) t
