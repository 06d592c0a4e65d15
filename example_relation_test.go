package converge_test

import (
	"context"
	"fmt"
	"log"

	"github.com/convergedb/converge"
)

type Album struct {
	ID    string `msgpack:"-" converge:"id"`
	Title string `msgpack:"title"`
	Year  int    `msgpack:"year"`
	Meta  converge.Meta
}

type Song struct {
	ID    string `msgpack:"-" converge:"id"`
	Title string `msgpack:"title"`
	Album string `msgpack:"album"` // the id of an Album
	Meta  converge.Meta
}

type Playlist struct {
	ID    string   `msgpack:"-" converge:"id"`
	Name  string   `msgpack:"name"`
	Songs []string `msgpack:"songs" converge:"set"` // ids of Songs
	Meta  converge.Meta
}

func ExampleBelongsTo() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	albums, err := converge.NewCollection[Album](db, "albums")
	if err != nil {
		log.Fatal(err)
	}
	songs, err := converge.NewCollection[Song](db, "songs")
	if err != nil {
		log.Fatal(err)
	}
	onAlbum, err := converge.NewBelongsTo(songs, "album", albums)
	if err != nil {
		log.Fatal(err)
	}
	if err := onAlbum.EnsureIndex(ctx); err != nil { // for Children and WhereParent
		log.Fatal(err)
	}
	for _, a := range []Album{{ID: "a1", Title: "Blue", Year: 1971}, {ID: "a2", Title: "Hejira", Year: 1976}} {
		if _, err := albums.Put(ctx, "me", &a); err != nil {
			log.Fatal(err)
		}
	}
	for _, s := range []Song{{ID: "s1", Title: "River", Album: "a1"}, {ID: "s2", Title: "California", Album: "a1"}, {ID: "s3", Title: "Amelia", Album: "a2"}} {
		if _, err := songs.Put(ctx, "me", &s); err != nil {
			log.Fatal(err)
		}
	}

	a, err := onAlbum.Parent(ctx, "me", "s3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("s3 is on", a.Title)
	blue, err := onAlbum.Children(ctx, "me", "a1", converge.Query{}.OrderBy("title"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("on Blue:", titles(blue))
	// Songs of albums from 1975 on: a nested association query.
	later, err := songs.Find(ctx, "me", converge.Where(onAlbum.WhereParent(converge.Gte("year", 1975))))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("from 1975 on:", titles(later))

	// An album with its songs, again after every change to either.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	n := 0
	for v, err := range onAlbum.WatchWithChildren(wctx, "me", "a1", converge.Query{}.OrderBy("title")) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s (%d): %v\n", v.Value.Record.Title, v.Value.Record.Year, titles(v.Value.Related))
		switch n++; n {
		case 1:
			_, err = songs.Put(ctx, "me", &Song{ID: "s4", Title: "A Case of You", Album: "a1"})
		case 2:
			err = albums.Update(ctx, "me", "a1", converge.Set("year", 1972))
		default:
			stop()
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// s3 is on Hejira
	// on Blue: [California River]
	// from 1975 on: [Amelia]
	// Blue (1971): [California River]
	// Blue (1971): [A Case of You California River]
	// Blue (1972): [A Case of You California River]
}

func ExampleManyToMany() {
	ctx := context.Background()
	db, done := openTemp()
	defer done()
	songs, err := converge.NewCollection[Song](db, "songs")
	if err != nil {
		log.Fatal(err)
	}
	playlists, err := converge.NewCollection[Playlist](db, "playlists")
	if err != nil {
		log.Fatal(err)
	}
	holds, err := converge.NewManyToMany(playlists, "songs", songs)
	if err != nil {
		log.Fatal(err)
	}
	if err := holds.EnsureIndex(ctx); err != nil { // for Reverse and WhereRelated
		log.Fatal(err)
	}
	for _, s := range []Song{{ID: "s1", Title: "River", Album: "a1"}, {ID: "s2", Title: "California", Album: "a1"}, {ID: "s3", Title: "Amelia", Album: "a2"}} {
		if _, err := songs.Put(ctx, "me", &s); err != nil {
			log.Fatal(err)
		}
	}
	for _, p := range []Playlist{
		{ID: "winter", Name: "Winter", Songs: []string{"s1", "s3", "s9"}}, // s9 does not exist
		{ID: "road", Name: "Road trip", Songs: []string{"s2", "s3"}},
	} {
		if _, err := playlists.Put(ctx, "me", &p); err != nil {
			log.Fatal(err)
		}
	}

	winter, err := holds.Related(ctx, "me", "winter")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("Winter holds", titles(winter))
	withAmelia, err := holds.Reverse(ctx, "me", "s3", converge.Query{}.OrderBy("name"))
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range withAmelia {
		fmt.Println("Amelia is on", p.Name)
	}
	withC, err := playlists.Find(ctx, "me", converge.Where(holds.WhereRelated(converge.StartsWith("title", "C"))))
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range withC {
		fmt.Println("a song starting with C is on", p.Name)
	}
	// Output:
	// Winter holds [River Amelia]
	// Amelia is on Road trip
	// Amelia is on Winter
	// a song starting with C is on Road trip
}

func titles(songs []Song) []string {
	out := make([]string, len(songs))
	for i, s := range songs {
		out[i] = s.Title
	}
	return out
}
